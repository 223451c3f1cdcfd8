// libFuzzer target: the int8 model loader and the checkpoint loader must reject any byte
// string with qatc::Error or accept it; an accepted small int8 model must also run.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "runtime/executor.h"
#include "runtime/int_model.h"
#include "train/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    qatc::runtime::IntModel m = qatc::runtime::parse_int_model(bytes, "fuzz.int8");
    int64_t total = 0;
    for (const auto& t : m.tensors) total += qatc::numel(t.shape);
    if (total <= (1 << 16)) {  // execute models of sane size: every accepted model must run
      std::vector<uint8_t> pixels(static_cast<size_t>(qatc::numel(m.tensors[0].shape)), 127);
      qatc::runtime::Executor ex(m, 1);
      ex.run(pixels.data(), 1);
    }
  } catch (const qatc::Error&) {
  }
  try {
    qatc::train::parse_checkpoint(bytes, "fuzz.ckpt");
  } catch (const qatc::Error&) {
  }
  return 0;
}
