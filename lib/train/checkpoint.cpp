// Checkpoint encoding.
#include "train/checkpoint.h"

#include "core/bytes.h"
#include "core/container.h"
#include "core/file.h"

namespace qatc::train {
namespace {
constexpr std::string_view kMagic = "QATCCKPT";
constexpr uint32_t kVersion = 1;
}  // namespace

Checkpoint make_checkpoint(const nn::Graph& g, CheckpointKind kind, const std::string& recipe_yaml,
                           std::vector<float> params) {
  QATC_CHECK_EQ(static_cast<int64_t>(params.size()), g.param_floats);
  Checkpoint ck;
  ck.kind = kind;
  ck.recipe_yaml = recipe_yaml;
  for (const auto& p : g.params) ck.table.emplace_back(p.name, p.shape);
  ck.params = std::move(params);
  return ck;
}

void save_checkpoint(const std::filesystem::path& path, const Checkpoint& ck) {
  Container c;
  c.version = kVersion;
  {
    ByteWriter w;
    w.put<uint32_t>(static_cast<uint32_t>(ck.kind));
    c.sections["KIND"] = w.take();
  }
  c.sections["RCPE"] = ck.recipe_yaml;
  {
    ByteWriter w;
    w.put<uint64_t>(ck.table.size());
    for (const auto& [name, shape] : ck.table) {
      w.put_string(name);
      w.put_vector(shape);
    }
    c.sections["PTAB"] = w.take();
  }
  {
    ByteWriter w;
    w.put_vector(ck.params);
    c.sections["PRMS"] = w.take();
  }
  if (!ck.quant_state.empty()) c.sections["QSTA"] = ck.quant_state;
  if (ck.kind == CheckpointKind::train_state) {
    c.sections["OPTM"] = ck.optimizer;
    ByteWriter w;
    w.put<int64_t>(ck.progress.epoch);
    w.put<int64_t>(ck.progress.step_in_epoch);
    w.put<int64_t>(ck.progress.global_step);
    c.sections["PROG"] = w.take();
  }
  write_file_atomic(path, pack_container(kMagic, c));
}

Checkpoint load_checkpoint(const std::filesystem::path& path) { return parse_checkpoint(read_file(path), path.string()); }

Checkpoint parse_checkpoint(std::string_view bytes, const std::string& what) {
  Container c = unpack_container(bytes, kMagic, kVersion, what, "checkpoint");
  Checkpoint ck;
  {
    ByteReader r(c.at("KIND", what), what);
    uint32_t k = r.get<uint32_t>();
    if (k < 1 || k > 3) r.corrupt("unknown checkpoint kind");
    ck.kind = static_cast<CheckpointKind>(k);
  }
  ck.recipe_yaml = c.at("RCPE", what);
  if (c.has("QSTA")) ck.quant_state = c.at("QSTA", what);
  if (ck.kind == CheckpointKind::quant_model && ck.quant_state.empty())
    fail("{}: quantized checkpoint without quantizer state; re-create it", what);
  int64_t expected = 0;
  {
    ByteReader r(c.at("PTAB", what), what);
    uint64_t n = r.get<uint64_t>();
    if (n > r.remaining()) r.corrupt("parameter table size");
    for (uint64_t i = 0; i < n; ++i) {
      std::string name = r.get_string(4096);
      Shape shape = r.get_vector<int64_t>(8);
      int64_t count = 1;
      for (int64_t d : shape) {
        if (d < 0 || d > (int64_t{1} << 32)) r.corrupt("parameter shape");
        count *= d;
        if (count > (int64_t{1} << 40)) r.corrupt("parameter shape");
      }
      expected += count;
      ck.table.emplace_back(std::move(name), std::move(shape));
    }
  }
  {
    ByteReader r(c.at("PRMS", what), what);
    ck.params = r.get_vector<float>();
    if (static_cast<int64_t>(ck.params.size()) != expected) r.corrupt("parameter count does not match its table");
  }
  if (ck.kind == CheckpointKind::train_state) {
    ck.optimizer = c.at("OPTM", what);
    ByteReader r(c.at("PROG", what), what);
    ck.progress.epoch = r.get<int64_t>();
    ck.progress.step_in_epoch = r.get<int64_t>();
    ck.progress.global_step = r.get<int64_t>();
    if (ck.progress.epoch < 0 || ck.progress.step_in_epoch < 0 || ck.progress.global_step < 0)
      r.corrupt("negative progress");
  }
  return ck;
}

void check_matches(const Checkpoint& ck, const nn::Graph& g, const std::string& what) {
  const size_t n = std::min(ck.table.size(), g.params.size());
  for (size_t i = 0; i < n; ++i) {
    const auto& [name, shape] = ck.table[i];
    if (name != g.params[i].name || shape != g.params[i].shape)
      fail("{}: made for a different model: parameter {} is '{}' {} there but '{}' {} in this recipe; use the recipe "
           "that made it or start a new run folder",
           what, i, name, qatc::to_string(shape), g.params[i].name, qatc::to_string(g.params[i].shape));
  }
  if (ck.table.size() != g.params.size())
    fail("{}: made for a different model: it has {} parameter tensors, this recipe's model has {}", what,
         ck.table.size(), g.params.size());
}

}  // namespace qatc::train
