// Stage implementations over the run folder.
#include "pipeline/stages.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>

#include "core/error.h"
#include "core/file.h"
#include "core/threads.h"
#include "data/catalog.h"
#include "data/loader.h"
#include "data/source.h"
#include "core/rng.h"
#include "nn/graph.h"
#include "convert/convert.h"
#include "quant/quant_model.h"
#include "runtime/evaluate.h"
#include "pipeline/model_file.h"
#include "recipe/load.h"
#include "report/html.h"
#include "report/layer_stats.h"
#include "report/metrics.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

namespace qatc::pipeline {
namespace {

// Rows of the report, in the order they are shown. Later stages add their rows here.
const std::vector<std::pair<std::string, std::string>> kRows = {
    {"float", "float.ckpt"},   {"ptq_fakequant", "ptq.ckpt"}, {"qat_fakequant", "qat.ckpt"},
    {"ptq_int8", "ptq.int8"}, {"qat_int8", "qat.int8"}};

// Images timed one by one for the batch-1 latency column.

nlohmann::json read_json(const std::filesystem::path& p) {
  try {
    return nlohmann::json::parse(read_file(p));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON ({}); delete it and re-run the stage that wrote it", p.string(), e.what());
  }
}

void remove_if_exists(const std::filesystem::path& p) {
  std::error_code ec;
  std::filesystem::remove(p, ec);
}

}  // namespace

nlohmann::json train_stage(const recipe::Recipe& rc, const RunFolder& run, const StageOptions& opt) {
  spdlog::info("train: recipe '{}' -> {} ({} threads)", rc.name, run.root.string(), num_threads());
  nn::Graph g = nn::build_graph(rc.model);  // model mistakes first: they need no data
  std::unique_ptr<data::Source> ds = data::open_source(rc.data, "train", rc.model.input);
  data::check_fits(*ds, rc.model.input, g.classes(), rc.file);
  data::Split split = data::make_split(ds->size(), rc.data);
  spdlog::info("train: {} parameters ({} trainable), {} MACs per image; {} training and {} validation images",
               g.param_floats, g.trainable_count(), nn::macs_per_example(g), split.train.size(),
               split.validation.size());

  if (opt.resume) {
    // Refuse a wrong or damaged state before anything in the run folder is touched.
    std::error_code ec;
    if (!std::filesystem::exists(run.train_state(), ec))
      fail("--resume: no training state at {}; run without --resume to start from scratch",
           run.train_state().string());
    train::check_matches(train::load_checkpoint(run.train_state()), g, run.train_state().string());
  } else {
    // A fresh run must not mix its metrics or results with an earlier run's.
    remove_if_exists(run.root / "metrics.jsonl");
    remove_if_exists(run.train_state());
    remove_if_exists(run.ptq_ckpt());
    remove_if_exists(run.qat_ckpt());
    remove_if_exists(run.qat_state());
    remove_if_exists(run.ptq_int8());
    remove_if_exists(run.qat_int8());
    remove_if_exists(run.report_json());
    remove_if_exists(run.report_md());
    std::error_code ec;
    std::filesystem::remove_all(run.root / "results", ec);
  }
  write_file_atomic(run.recipe_copy(), rc.resolved_yaml);

  std::vector<float> params(static_cast<size_t>(g.param_floats));
  nn::init_params(g, params.data(), rc.seed);
  train::FloatModel model(g, std::move(params), rc.train.batch_size, true);

  train::LoopConfig cfg;
  cfg.stage = "train";
  cfg.epochs = rc.train.epochs;
  cfg.batch_size = rc.train.batch_size;
  cfg.seed = rc.seed;
  cfg.shuffle = rc.train.shuffle;
  cfg.checkpoint_every_steps = rc.train.checkpoint_every_steps;
  cfg.optimizer = rc.train.optimizer;
  cfg.schedule = rc.train.schedule;
  cfg.data = rc.data;
  cfg.recipe_yaml = rc.resolved_yaml;
  cfg.state_path = run.train_state();
  cfg.resume = opt.resume;
  train::LoopResult res = train::train_loop(model, *ds, split.train, split.validation, cfg, run.root);

  train::save_checkpoint(run.float_ckpt(), train::make_checkpoint(g, train::CheckpointKind::float_model,
                                                                  rc.resolved_yaml, model.params()));
  spdlog::info("train: wrote {} in {:.1f}s", run.float_ckpt().string(), res.seconds);
  nlohmann::json summary = {{"stage", "train"}, {"steps", res.steps}, {"seconds", res.seconds},
                            {"checkpoint", run.float_ckpt().string()}};
  if (!res.epochs.empty()) {
    const auto& last = res.epochs.back();
    summary["loss"] = last.loss;
    summary["accuracy"] = last.accuracy;
    if (!split.validation.empty()) summary["val_accuracy"] = last.val_accuracy;
  }
  return summary;
}

namespace {

// The float weights a ptq/qat stage starts from, checked against the recipe's model.
std::vector<float> load_float_start(const recipe::Recipe& rc, const RunFolder& run, const StageOptions& opt,
                                    const nn::Graph& g, const char* stage) {
  const std::filesystem::path from = opt.from.empty() ? run.float_ckpt() : std::filesystem::path(opt.from);
  std::error_code ec;
  if (!std::filesystem::exists(from, ec)) {
    if (opt.from.empty())
      fail("{}: {} not found; the train stage makes it (qatc train {} --out {}), or pass --from FILE", stage,
           from.string(), rc.file, run.root.string());
    fail("{}: --from {}: file not found", stage, from.string());
  }
  train::Checkpoint ck = train::load_checkpoint(from);
  if (ck.kind != train::CheckpointKind::float_model)
    fail("{}: {} is not a float model checkpoint; {} starts from the float.ckpt the train stage writes", stage,
         from.string(), stage);
  train::check_matches(ck, g, from.string());
  return std::move(ck.params);
}

// A run that starts from another float model keeps a copy as its own float.ckpt, so that the
// eval and report stages compare against the model the quantized ones came from. Called once
// every input is checked, so a refused run writes nothing.
void keep_float_start(const RunFolder& run, const StageOptions& opt, const char* stage) {
  std::error_code ec;
  if (opt.from.empty() || std::filesystem::equivalent(opt.from, run.float_ckpt(), ec)) return;
  write_file_atomic(run.float_ckpt(), read_file(opt.from));
  spdlog::info("{}: copied {} to {}", stage, opt.from, run.float_ckpt().string());
}

quant::WeightRange weight_range_of(const recipe::PtqSpec& p) {
  return p.weight_method == recipe::RangeMethod::mse ? quant::WeightRange::mse : quant::WeightRange::minmax;
}

void log_quant_plan(const nn::Graph& g, const quant::QuantPlan& plan) {
  for (const auto& w : plan.weights) {
    const auto& n = g.nodes[static_cast<size_t>(w.node)];
    spdlog::info("  {}: weights {} bits {}{}{}{}", n.name, w.spec.bits, w.per_channel ? "per channel" : "per tensor",
                 w.spec.narrow_range ? ", narrow range" : "",
                 w.bn_node >= 0 ? ", folds " + g.nodes[static_cast<size_t>(w.bn_node)].name : "",
                 plan.skipped[static_cast<size_t>(w.node)] ? " (skipped: stays float)" : "");
  }
  for (const auto& a : plan.acts)
    spdlog::info("  after {}: activations {} bits {}", g.nodes[static_cast<size_t>(a.node)].name, a.spec.bits,
                 a.spec.symmetric ? "symmetric" : "asymmetric");
}

}  // namespace

nlohmann::json ptq_stage(const recipe::Recipe& rc, const RunFolder& run, const StageOptions& opt) {
  nn::Graph g = nn::build_graph(rc.model);
  quant::QuantPlan plan = quant::make_plan(g, rc.quant);
  std::vector<float> params = load_float_start(rc, run, opt, g, "ptq");
  std::unique_ptr<data::Source> ds = data::open_source(rc.data, "train", rc.model.input);
  data::check_fits(*ds, rc.model.input, g.classes(), rc.file);
  data::Split split = data::make_split(ds->size(), rc.data);
  const char* methods[] = {"minmax", "percentile", "mse"};
  spdlog::info("ptq: calibrating {} weight and {} activation quantizers on {} batches of {} ({} activations, {} weights)",
               plan.weights.size(), plan.acts.size(), rc.ptq.batches, rc.ptq.batch_size,
               methods[static_cast<int>(rc.ptq.method)], methods[static_cast<int>(rc.ptq.weight_method)]);
  log_quant_plan(g, plan);

  quant::QatSchedule frozen;
  frozen.freeze_bn_after_steps = 0;  // PTQ folds BatchNorm with its moving statistics
  frozen.freeze_observers_after_steps = 0;
  quant::QuantModel model(g, plan, std::move(params), rc.ptq.batch_size, false, frozen, weight_range_of(rc.ptq));
  // Calibration images: a seeded sample of the training split.
  Rng rng(derive_seed(rc.seed, 0xCA11B));
  auto perm = rng.permutation(static_cast<int32_t>(split.train.size()));
  const int64_t want = std::min<int64_t>(rc.ptq.batches * rc.ptq.batch_size, static_cast<int64_t>(perm.size()));
  std::vector<int32_t> idx(static_cast<size_t>(want));
  for (int64_t i = 0; i < want; ++i) idx[static_cast<size_t>(i)] = split.train[static_cast<size_t>(perm[static_cast<size_t>(i)])];
  const int64_t per = ds->example_floats();
  std::vector<float> x(static_cast<size_t>(rc.ptq.batch_size * per));
  std::vector<int32_t> y(static_cast<size_t>(rc.ptq.batch_size));
  model.begin_calibration();
  for (int64_t b = 0; b < want; b += rc.ptq.batch_size) {
    const int64_t n = std::min(rc.ptq.batch_size, want - b);
    ds->gather(idx.data() + b, n, x.data(), y.data(), false, 0);
    model.forward(x.data(), n, nn::Mode::eval, 0);
  }
  model.end_calibration(rc.ptq.method, rc.ptq.percentile);

  train::Checkpoint ck = train::make_checkpoint(g, train::CheckpointKind::quant_model, rc.resolved_yaml, model.params());
  ck.quant_state = model.save_state();
  write_file_atomic(run.recipe_copy(), rc.resolved_yaml);
  keep_float_start(run, opt, "ptq");
  train::save_checkpoint(run.ptq_ckpt(), ck);
  report::append_metrics(run.root, {{"stage", "ptq"}, {"images", want}});
  spdlog::info("ptq: wrote {}", run.ptq_ckpt().string());
  return {{"stage", "ptq"}, {"images", want}, {"checkpoint", run.ptq_ckpt().string()}};
}

nlohmann::json qat_stage(const recipe::Recipe& rc, const RunFolder& run, const StageOptions& opt) {
  nn::Graph g = nn::build_graph(rc.model);
  quant::QuantPlan plan = quant::make_plan(g, rc.quant);
  std::vector<float> params = load_float_start(rc, run, opt, g, "qat");
  if (opt.resume) {
    std::error_code ec;
    if (!std::filesystem::exists(run.qat_state(), ec))
      fail("--resume: no QAT state at {}; run without --resume to start QAT from the float model",
           run.qat_state().string());
    train::check_matches(train::load_checkpoint(run.qat_state()), g, run.qat_state().string());
  }
  std::unique_ptr<data::Source> ds = data::open_source(rc.data, "train", rc.model.input);
  data::check_fits(*ds, rc.model.input, g.classes(), rc.file);
  recipe::DataSpec qdata = rc.data;
  qdata.train_subset = rc.qat.subset;
  data::Split split = data::make_split(ds->size(), qdata);
  const auto& q = rc.qat;
  spdlog::info("qat: {} on {} images (validation {}), batch {}, {} lr {}; quant_delay_steps {}, "
               "freeze_bn_after_steps {}, freeze_observers_after_steps {}",
               q.steps > 0 ? fmt::format("{} steps", q.steps) : fmt::format("{} epochs", q.epochs), split.train.size(),
               split.validation.size(), q.batch_size,
               q.optimizer.type == recipe::OptimizerKind::sgd ? "sgd"
               : q.optimizer.type == recipe::OptimizerKind::adam ? "adam" : "adamw",
               q.optimizer.lr, q.quant_delay_steps, q.freeze_bn_after_steps, q.freeze_observers_after_steps);
  log_quant_plan(g, plan);

  quant::QatSchedule sched{q.quant_delay_steps, q.freeze_bn_after_steps, q.freeze_observers_after_steps};
  quant::QuantModel model(g, plan, std::move(params), q.batch_size, true, sched);
  write_file_atomic(run.recipe_copy(), rc.resolved_yaml);
  keep_float_start(run, opt, "qat");

  train::LoopConfig cfg;
  cfg.stage = "qat";
  cfg.epochs = q.epochs;
  cfg.max_steps = q.steps;
  cfg.batch_size = q.batch_size;
  cfg.seed = derive_seed(rc.seed, 0x9A7);
  cfg.checkpoint_every_steps = q.checkpoint_every_steps;
  cfg.optimizer = q.optimizer;
  cfg.schedule = q.schedule;
  cfg.data = qdata;
  cfg.recipe_yaml = rc.resolved_yaml;
  cfg.state_path = run.qat_state();
  cfg.resume = opt.resume;
  train::LoopResult res = train::train_loop(model, *ds, split.train, split.validation, cfg, run.root);

  train::Checkpoint ck = train::make_checkpoint(g, train::CheckpointKind::quant_model, rc.resolved_yaml, model.params());
  ck.quant_state = model.save_state();
  train::save_checkpoint(run.qat_ckpt(), ck);
  spdlog::info("qat: wrote {} in {:.1f}s", run.qat_ckpt().string(), res.seconds);
  return {{"stage", "qat"}, {"steps", res.steps}, {"seconds", res.seconds}, {"checkpoint", run.qat_ckpt().string()}};
}

nlohmann::json convert_stage(const recipe::Recipe& rc, const RunFolder& run) {
  nlohmann::json done = nlohmann::json::array();
  std::error_code ec;
  for (const auto& [ckpt, model] : {std::pair{run.ptq_ckpt(), run.ptq_int8()}, std::pair{run.qat_ckpt(), run.qat_int8()}}) {
    if (!std::filesystem::exists(ckpt, ec)) continue;
    runtime::IntModel m = convert::convert_checkpoint(ckpt);
    runtime::save_int_model(model, m);
    spdlog::info("convert: {} -> {} ({} bytes)", ckpt.string(), model.string(), std::filesystem::file_size(model));
    done.push_back(model.string());
  }
  if (done.empty())
    fail("convert: {} holds no ptq.ckpt or qat.ckpt; the ptq and qat stages make them (add them to {}'s stages)",
         run.root.string(), rc.file);
  return {{"stage", "convert"}, {"models", done}};
}

nlohmann::json eval_stage(const recipe::Recipe& rc, const RunFolder& run) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& [row, file] : kRows) {
    const auto path = run.root / file;
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      if (row == "float")
        fail("eval: {} not found; the train stage makes it (qatc train {} --out {})", path.string(), rc.file,
             run.root.string());
      continue;
    }
    ModelEval me = evaluate_model_file(path, DataChoice{rc.data.dataset, "test", rc.data.path}, rc.eval.batch_size);
    std::unique_ptr<data::Source> test = data::open_source(rc.data, "test", rc.model.input);
    runtime::Latency lat;
    nlohmann::json agreement;
    if (me.kind == "int8") {
      runtime::IntModel im = runtime::load_int_model(path);
      lat = runtime::int_latency(im, *test, rc.eval.latency_images);
      // Simulated == integer: the fake-quant checkpoint this model was converted from.
      const auto source = run.root / (row.substr(0, 3) + ".ckpt");
      if (std::filesystem::exists(source, ec)) {
        LoadedModel fq = open_checkpoint(source, rc.eval.batch_size);
        runtime::Agreement a =
            runtime::compare_with_fakequant(im, *fq.model, *test, data::all_indices(*test), rc.eval.batch_size);
        agreement = {{"top1", a.top1}, {"within_one_step", a.within_one_step}, {"max_step_diff", a.max_step_diff}};
        spdlog::info("eval: {} vs {}: same top-1 on {:.3f}% of images, {:.3f}% of logits within one step (max {})",
                     row, source.filename().string(), 100 * a.top1, 100 * a.within_one_step, a.max_step_diff);
      }
    } else {
      LoadedModel lm = open_checkpoint(path, 1);
      lat = runtime::float_latency(*lm.model, *test, rc.eval.latency_images);
    }
    nlohmann::json layers;
    if (me.kind == "fakequant") {
      LoadedModel lm = open_checkpoint(path, 512);
      layers = report::to_json(report::layer_stats(dynamic_cast<const quant::QuantModel&>(*lm.model), *test, 512));
    }
    nlohmann::json j = {{"model", row},
                        {"accuracy", me.result.accuracy},
                        {"loss", me.result.loss},
                        {"examples", me.result.examples},
                        {"size_bytes", me.size_bytes},
                        {"seconds", me.result.seconds},
                        {"dataset", me.dataset},
                        {"latency_ms_batch1", lat.median_ms},
                        {"file", file}};
    if (!agreement.is_null()) j["agreement_with_fakequant"] = agreement;
    if (!layers.is_null()) j["layers"] = layers;
    write_file_atomic(run.result(row), j.dump(2) + "\n");
    report::append_metrics(run.root, {{"stage", "eval"}, {"model", row}, {"accuracy", me.result.accuracy},
                                      {"loss", me.result.loss}, {"examples", me.result.examples}});
    spdlog::info("eval: {} accuracy {:.2f}% on {} ({} images, {:.1f}s)", row, 100 * me.result.accuracy, me.dataset,
                 me.result.examples, me.result.seconds);
    rows.push_back(j);
  }
  return rows;
}

nlohmann::json report_stage(const RunFolder& run) {
  std::error_code ec;
  if (!std::filesystem::is_directory(run.root, ec))
    fail("report: {} is not a run folder; `qatc run RECIPE` makes one", run.root.string());
  if (!std::filesystem::exists(run.recipe_copy(), ec))
    fail("report: {} has no recipe.yaml; it is not a run folder made by `qatc run` or `qatc train`",
         run.root.string());
  recipe::Recipe rc = recipe::load_recipe(run.recipe_copy());
  nlohmann::json results = nlohmann::json::array();
  nlohmann::json artifacts = nlohmann::json::object();
  std::string dataset_split;
  int64_t test_examples = 0;
  for (const auto& [row, file] : kRows) {
    if (std::filesystem::exists(run.root / file, ec)) artifacts[row] = file;
    if (!std::filesystem::exists(run.result(row), ec)) continue;
    nlohmann::json r = read_json(run.result(row));
    dataset_split = r.value("dataset", "");
    test_examples = r.value("examples", int64_t{0});
    results.push_back(r);
  }
  if (results.empty())
    fail("report: {} has no evaluation results; the eval stage makes them (qatc run {} with stage eval)",
         run.root.string(), run.recipe_copy().string());
  for (const char* f : {"metrics.jsonl", "recipe.yaml", "train_state.ckpt"})
    if (std::filesystem::exists(run.root / f, ec)) artifacts[f] = f;
  nlohmann::json rep = {{"recipe", rc.name},
                        {"dataset", {{"name", rc.data.dataset}, {"split", dataset_split}, {"examples", test_examples}}},
                        {"results", results},
                        {"artifacts", artifacts}};
  write_file_atomic(run.report_json(), rep.dump(2) + "\n");

  std::string md = "# qatc report: " + rc.name + "\n\n";
  md += "Dataset: " + dataset_split + " (" + std::to_string(test_examples) + " images)\n\n";
  md += report_table(rep);
  auto metrics = report::read_metrics(run.root);
  std::string curve;
  for (const auto& m : metrics)
    if (m.value("stage", "") == "train" && m.contains("epoch"))
      curve += fmt::format("| {} | {:.4f} | {:.2f}% | {} | {:.1f} |\n", m.value("epoch", 0), report::number(m, "loss"),
                           100 * report::number(m, "accuracy"),
                           m.contains("val_accuracy") ? fmt::format("{:.2f}%", 100 * report::number(m, "val_accuracy"))
                                                      : std::string("-"),
                           report::number(m, "seconds"));
  if (!curve.empty())
    md += "\n## Float training\n\n| epoch | loss | accuracy | val accuracy | seconds |\n|---|---|---|---|---|\n" + curve;
  for (const auto& r : results) {
    if (!r.contains("layers")) continue;
    md += "\n## Per layer: " + r.value("model", std::string()) +
          "\n\n| layer | weight bits | weight SQNR (dB) | activation bits | activation SQNR (dB) | clipped |\n"
          "|---|---|---|---|---|---|\n";
    for (const auto& l : r["layers"])
      md += fmt::format("| {}{} | {} | {} | {} | {:.1f} | {:.4f}% |\n", l.value("layer", ""),
                        l.value("skipped", false) ? " (float)" : "",
                        l.contains("weight_bits") ? std::to_string(l.value("weight_bits", 0)) : "-",
                        l.contains("weight_sqnr_db") ? fmt::format("{:.1f}", report::number(l, "weight_sqnr_db")) : "-",
                        l.value("activation_bits", 0), report::number(l, "activation_sqnr_db"),
                        100 * report::number(l, "activation_clipped"));
  }
  write_file_atomic(run.report_md(), md);
  write_file_atomic(run.root / "report.html", report::render_html(rep, metrics));
  return rep;
}

std::string report_table(const nlohmann::json& report) {
  std::string t =
      "| model | accuracy | vs float (points) | examples | size (bytes) | latency batch 1 (ms) |\n|---|---|---|---|---|---|\n";
  double float_acc = -1;
  for (const auto& r : report.at("results"))
    if (r.value("model", "") == "float") float_acc = report::number(r, "accuracy");
  for (const auto& r : report.at("results")) {
    const double acc = report::number(r, "accuracy");
    std::string delta = float_acc >= 0 ? fmt::format("{:+.2f}", 100 * (acc - float_acc)) : "-";
    t += fmt::format("| {} | {:.2f}% | {} | {} | {} | {:.3f} |\n", r.value("model", ""), 100 * acc, delta,
                     r.value("examples", 0), r.value("size_bytes", 0), report::number(r, "latency_ms_batch1"));
  }
  return t;
}

std::vector<std::string> gate_failures(const nlohmann::json& report, double max_drop) {
  std::vector<std::string> out;
  if (max_drop < 0) return out;
  double float_acc = -1;
  for (const auto& r : report.at("results"))
    if (r.value("model", "") == "float") float_acc = report::number(r, "accuracy");
  if (float_acc < 0) return {"no float result to compare against; the gate needs the eval of float.ckpt"};
  for (const auto& r : report.at("results")) {
    const std::string model = r.value("model", "");
    if (model.size() < 5 || model.substr(model.size() - 5) != "_int8") continue;
    const double drop = float_acc - report::number(r, "accuracy");
    if (drop > max_drop)
      out.push_back(fmt::format("{} accuracy {:.2f}% is {:.2f} points below float {:.2f}%, more than the allowed {:.2f}",
                                model, 100 * report::number(r, "accuracy"), 100 * drop, 100 * float_acc, 100 * max_drop));
  }
  return out;
}

nlohmann::json run_stages(const recipe::Recipe& rc, const RunFolder& run, const StageOptions& given) {
  nlohmann::json out = {{"recipe", rc.name}, {"run_dir", run.root.string()}, {"stages", nlohmann::json::array()}};
  // The test data is checked before anything runs: a bad val folder or labels file must not
  // surface only after hours of training.
  if (std::find(rc.stages.begin(), rc.stages.end(), recipe::Stage::eval) != rc.stages.end())
    data::open_source(rc.data, "test", rc.model.input);
  for (recipe::Stage s : rc.stages) {
    // `run --resume` continues whichever stage was interrupted; stages without a saved state start fresh.
    StageOptions opt = given;
    std::error_code ec;
    if (s == recipe::Stage::train) opt.resume = given.resume && std::filesystem::exists(run.train_state(), ec);
    if (s == recipe::Stage::qat) opt.resume = given.resume && std::filesystem::exists(run.qat_state(), ec);
    switch (s) {
      case recipe::Stage::train: out["stages"].push_back(train_stage(rc, run, opt)); break;
      case recipe::Stage::ptq: out["stages"].push_back(ptq_stage(rc, run, opt)); break;
      case recipe::Stage::qat: out["stages"].push_back(qat_stage(rc, run, opt)); break;
      case recipe::Stage::convert: out["stages"].push_back(convert_stage(rc, run)); break;
      case recipe::Stage::eval: out["stages"].push_back({{"stage", "eval"}, {"results", eval_stage(rc, run)}}); break;
      case recipe::Stage::report: out["report"] = report_stage(run); break;
    }
  }
  const double gate = given.max_accuracy_drop >= 0 ? given.max_accuracy_drop : rc.eval.max_accuracy_drop;
  if (gate >= 0 && out.contains("report")) {
    auto failed = gate_failures(out["report"], gate);
    out["gate"] = {{"max_accuracy_drop", gate}, {"passed", failed.empty()}, {"failures", failed}};
  }
  return out;
}

}  // namespace qatc::pipeline
