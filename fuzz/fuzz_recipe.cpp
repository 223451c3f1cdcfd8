// libFuzzer target: the recipe parser must reject any text with qatc::Error or accept it;
// an accepted recipe's graph construction must also fail cleanly or succeed.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "nn/graph.h"
#include "quant/plan.h"
#include "recipe/load.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    qatc::recipe::Recipe r = qatc::recipe::parse_recipe(text, "fuzz.yaml");
    qatc::nn::Graph g = qatc::nn::build_graph(r.model);
    if (g.param_floats < (int64_t{1} << 24)) qatc::quant::make_plan(g, r.quant);
  } catch (const qatc::Error&) {
  }
  return 0;
}
