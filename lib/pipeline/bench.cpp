// Model benchmarking.
#include "pipeline/bench.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>

#include "convert/convert.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/threads.h"
#include "nn/gemm_packed.h"
#include "nn/graph.h"
#include "pipeline/model_file.h"
#include "quant/quant_model.h"
#include "recipe/load.h"
#include "runtime/executor.h"
#include "runtime/int_model.h"
#include "train/checkpoint.h"
#include "train/model.h"

namespace qatc::pipeline {
namespace {

bool is_recipe(const std::filesystem::path& f) { return f.extension() == ".yaml" || f.extension() == ".yml"; }

// What computes a form's products: the int8 path's instruction set; for float (the inference
// engine), "packed_avx512f" where its convolutions run on packed weights (nn/gemm_packed.h),
// else "openblas", as for fakequant (the training engine).
std::string kernels_of(const std::string& form) {
  if (form == "int8") return runtime::kernels_in_use();
  return form == "float" && nn::packed_gemm_enabled() ? "packed_avx512f" : "openblas";
}

// The range of model inputs the recipe's data gives: [0, 1] scaled by mean/std for IDX data,
// the preprocessing preset's for an image folder.
std::pair<float, float> input_range(const recipe::DataSpec& d) {
  if (d.dataset == "image_folder") {
    if (d.preprocess == "caffe") return {-123.68f, 151.061f};
    if (d.preprocess == "torch") return {-2.1179f, 2.64f};
    return {-1.0f, 1.0f};
  }
  return {static_cast<float>(-d.mean / d.std), static_cast<float>((1.0 - d.mean) / d.std)};
}

std::vector<float> random_inputs(int64_t count, std::pair<float, float> range, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> x(static_cast<size_t>(count));
  for (auto& v : x) v = rng.uniform(range.first, range.second);
  return x;
}

// The models of one file, built only as far as the form needs.
struct Models {
  recipe::Recipe rc;
  std::unique_ptr<nn::Graph> graph;
  std::unique_ptr<train::Trainable> model;  // float or fakequant
  std::unique_ptr<runtime::IntModel> int8;
  int64_t input_floats = 0;
};

// PTQ on random inputs: two batches of 8 set every range.
std::unique_ptr<quant::QuantModel> quick_ptq(const nn::Graph& g, const recipe::Recipe& rc, std::vector<float> params,
                                             int64_t max_batch) {
  quant::QatSchedule frozen;
  frozen.freeze_bn_after_steps = 0;
  frozen.freeze_observers_after_steps = 0;
  auto q = std::make_unique<quant::QuantModel>(g, quant::make_plan(g, rc.quant), std::move(params),
                                               std::max<int64_t>(max_batch, 8), false, frozen);
  const int64_t per = numel(g.nodes[0].shape);
  q->begin_calibration();
  for (uint64_t b = 0; b < 2; ++b) {
    const auto x = random_inputs(8 * per, input_range(rc.data), derive_seed(rc.seed, 0xBE4C, b));
    q->forward(x.data(), 8, nn::Mode::eval, 0);
  }
  q->end_calibration(recipe::RangeMethod::minmax, 100.0);
  return q;
}

Models build(const std::filesystem::path& file, const std::string& form, const BenchOptions& o) {
  Models m;
  if (runtime::is_int_model_file(file)) {
    if (form != "int8") fail("{}: an int8 model file times as int8 only, not {}", file.string(), form);
    m.int8 = std::make_unique<runtime::IntModel>(runtime::load_int_model(file));
    m.input_floats = numel(m.int8->tensors[0].shape);
    return m;
  }
  std::unique_ptr<quant::QuantModel> q;
  if (is_recipe(file)) {
    m.rc = recipe::load_recipe(file, o.sets);
    m.graph = std::make_unique<nn::Graph>(nn::build_graph(m.rc.model));
    std::vector<float> params(static_cast<size_t>(m.graph->param_floats));
    nn::init_params(*m.graph, params.data(), m.rc.seed);
    if (form == "float") m.model = std::make_unique<train::FloatModel>(*m.graph, std::move(params), o.batch, false);
    else q = quick_ptq(*m.graph, m.rc, std::move(params), o.batch);
  } else {
    LoadedModel lm = open_checkpoint(file, std::max<int64_t>(o.batch, 8));
    m.rc = lm.recipe;
    m.graph = std::move(lm.graph);
    if (lm.kind == "float") {
      if (form == "float") m.model = std::move(lm.model);
      else q = quick_ptq(*m.graph, m.rc, dynamic_cast<train::FloatModel&>(*lm.model).params(), o.batch);
    } else {
      if (form == "float") fail("{}: a quantized checkpoint times as fakequant or int8, not float", file.string());
      q.reset(dynamic_cast<quant::QuantModel*>(lm.model.release()));
    }
  }
  m.input_floats = numel(m.graph->nodes[0].shape);
  if (form == "int8") m.int8 = std::make_unique<runtime::IntModel>(convert::to_int_model(*q, m.rc, "ptq"));
  else if (form == "fakequant") m.model = std::move(q);
  return m;
}

// Resident memory now (/proc/self/statm), 0 when unavailable.
int64_t current_rss_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  long pages_total = 0, pages_resident = 0;
  const int got = std::fscanf(f, "%ld %ld", &pages_total, &pages_resident);
  std::fclose(f);
  return got == 2 ? static_cast<int64_t>(pages_resident) * sysconf(_SC_PAGESIZE) : 0;
}

// Reads a byte of every page of this program's own code (its executable mappings) so that it
// is resident before the start mark: the first run of a model otherwise maps the code of its
// kernels in 64 KB windows around each first use (the kernel's fault-around), 0.13 to 0.46 MB
// of cnn_bn's figure, depending on which kernels ran and not on the model's memory.
void make_own_code_resident() {
  std::error_code ec;
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  std::FILE* f = ec ? nullptr : std::fopen("/proc/self/maps", "r");
  if (!f) return;
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  char line[4096];
  while (std::fgets(line, sizeof line, f)) {
    uintptr_t lo = 0, hi = 0;
    char perm[5] = {};
    int path_at = 0;
    if (std::sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %4s %*s %*s %*s %n", &lo, &hi, perm, &path_at) < 3 ||
        path_at == 0 || perm[0] != 'r' || perm[2] != 'x')
      continue;
    std::string path(line + path_at);
    while (!path.empty() && (path.back() == '\n' || path.back() == ' ')) path.pop_back();
    if (path != exe) continue;
    for (uintptr_t a = lo; a < hi; a += page) (void)*reinterpret_cast<const volatile char*>(a);
  }
  std::fclose(f);
}

// One layer of a per-layer profile, and the run times recorded for it.
struct LayerRow {
  std::string name, op;
  Shape output;
  int64_t macs = 0;
  bool fused = false;  // done by a neighbour's kernel (timed there)
  std::vector<double> ms;
};

std::vector<LayerRow> profile_rows(const runtime::IntModel& m) {
  std::vector<LayerRow> rows{{"input", "quantize", m.tensors[0].shape, 0, false, {}}};
  for (const auto& l : m.layers)
    rows.push_back({l.name, runtime::layer_kind(l), m.tensors[static_cast<size_t>(l.output)].shape,
                    runtime::layer_macs(m, l), false, {}});
  return rows;
}

nlohmann::json profile_json(std::vector<LayerRow>& rows, int64_t batch) {
  double sum = 0;
  std::vector<double> med;
  for (auto& r : rows) {
    std::sort(r.ms.begin(), r.ms.end());
    med.push_back(r.ms.empty() ? 0.0 : r.ms[r.ms.size() / 2]);
    sum += med.back();
  }
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    const double gmacs = med[i] > 0 ? static_cast<double>(r.macs * batch) / (med[i] * 1e6) : 0.0;
    out.push_back({{"name", r.name}, {"op", r.op}, {"output", r.output}, {"macs", r.macs}, {"ms_median", med[i]},
                   {"share", sum > 0 ? med[i] / sum : 0.0}, {"gmacs_per_s", gmacs}, {"fused", r.fused}});
  }
  return out;
}

int64_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<int64_t>(u.ru_maxrss) * 1024;  // Linux reports KiB
}

}  // namespace

std::vector<std::string> bench_forms(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) fail("{}: file not found", file.string());
  if (runtime::is_int_model_file(file)) return {"int8"};
  if (is_recipe(file)) return {"float", "fakequant", "int8"};
  const train::Checkpoint ck = train::load_checkpoint(file);
  if (ck.kind == train::CheckpointKind::float_model) return {"float", "fakequant", "int8"};
  if (ck.kind == train::CheckpointKind::quant_model) return {"fakequant", "int8"};
  fail("{}: a training state, not a model; bench takes a recipe, float.ckpt, ptq.ckpt, qat.ckpt or an int8 model",
       file.string());
}

nlohmann::json bench_form(const std::filesystem::path& file, const std::string& form, const BenchOptions& o) {
  const auto forms = bench_forms(file);
  if (std::find(forms.begin(), forms.end(), form) == forms.end())
    fail("{}: cannot time it as '{}'; it times as: {}", file.string(), form, fmt::format("{}", fmt::join(forms, ", ")));
  make_own_code_resident();
  const int64_t rss_start = current_rss_bytes();  // the binary and its libraries, before any model
  Models m = build(file, form, o);
  std::unique_ptr<runtime::Executor> ex;  // int8: takes the model, keeping only its packed weights
  std::vector<LayerRow> rows;
  if (m.int8 && o.profile) rows = profile_rows(*m.int8);
  if (m.int8) ex = std::make_unique<runtime::Executor>(std::move(*m.int8), o.batch);
  if (ex && o.profile) {
    ex->set_profile(true);
    for (size_t i = 0; i + 1 < rows.size(); ++i)
      if (ex->done_by(i) >= 0) rows[i + 1].fused = true;
  }
  const auto x = random_inputs(o.batch * m.input_floats, input_range(m.rc.data), 0xB0B);
  std::unique_ptr<train::Predictor> predictor;
  if (!m.int8) predictor = m.model->predictor(o.batch);
  auto run_once = [&] {
    if (ex) ex->run_float(x.data(), o.batch);
    else predictor->predict(x.data(), o.batch);
  };
  run_once();
  run_once();  // warm-up: buffers allocated, caches and pages touched
  std::vector<double> ms;
  double total = 0;
  while (static_cast<int64_t>(ms.size()) < o.max_runs && (ms.size() < 5 || total < o.max_seconds * 1000.0)) {
    const auto t0 = std::chrono::steady_clock::now();
    run_once();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    total += ms.back();
    if (!rows.empty()) {
      rows[0].ms.push_back(ex->input_ms());
      for (size_t i = 0; i + 1 < rows.size(); ++i) rows[i + 1].ms.push_back(ex->layer_ms()[i]);
    }
  }
  std::sort(ms.begin(), ms.end());
  const double median = ms[ms.size() / 2], p90 = ms[std::min(ms.size() - 1, ms.size() * 9 / 10)];
  nlohmann::json r = {{"model", form},
                      {"batch", o.batch},
                      {"threads", num_threads()},
                      {"kernels", kernels_of(form)},
                      {"latency_ms_median", median},
                      {"latency_ms_p90", p90},
                      {"latency_ms_min", ms.front()},
                      {"images_per_s", static_cast<double>(o.batch) * 1000.0 / median},
                      {"runs", ms.size()},
                      {"peak_rss_bytes", peak_rss_bytes()},
                      {"peak_rss_above_start_bytes", peak_rss_bytes() - rss_start}};
  if (!rows.empty()) r["layers"] = profile_json(rows, o.batch);
  if (ex) {
    const int64_t pair = runtime::largest_activation_pair_bytes(ex->model(), o.batch);
    r["largest_activation_pair_bytes"] = pair;
    r["activation_arena_bytes"] = ex->arena_bytes();
    if (runtime::is_int_model_file(file)) {  // the memory bound of docs/performance.md
      const auto file_bytes = static_cast<int64_t>(std::filesystem::file_size(file));
      r["model_file_bytes"] = file_bytes;
      r["memory_bound_bytes"] = 3 * (file_bytes + pair) / 2;
    }
  }
  return r;
}

runtime::IntModel bench_int_model(const std::filesystem::path& file, const BenchOptions& o) {
  bench_forms(file);  // its checks and messages (every file bench takes has an int8 form)
  return std::move(*build(file, "int8", o).int8);
}

}  // namespace qatc::pipeline
