// Stage implementations over the run folder.
#include "pipeline/stages.h"

#include <spdlog/spdlog.h>

#include <fstream>

#include "core/error.h"
#include "core/file.h"
#include "core/threads.h"
#include "data/catalog.h"
#include "data/loader.h"
#include "nn/graph.h"
#include "pipeline/model_file.h"
#include "recipe/load.h"
#include "report/metrics.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

namespace qatc::pipeline {
namespace {

// Rows of the report, in the order they are shown. Later stages add their rows here.
const std::vector<std::pair<std::string, std::string>> kRows = {{"float", "float.ckpt"}};

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
  data::Dataset ds = data::load_dataset(rc.data.dataset, "train", rc.data.path);
  nn::Graph g = nn::build_graph(rc.model);
  data::check_fits(ds, rc.model.input, g.classes(), rc.file);
  data::Split split = data::make_split(ds, rc.data);
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
  train::LoopResult res = train::train_loop(model, ds, split.train, split.validation, cfg, run.root);

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
    nlohmann::json j = {{"model", row},
                        {"accuracy", me.result.accuracy},
                        {"loss", me.result.loss},
                        {"examples", me.result.examples},
                        {"size_bytes", me.size_bytes},
                        {"seconds", me.result.seconds},
                        {"dataset", me.dataset},
                        {"file", file}};
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
      curve += fmt::format("| {} | {:.4f} | {:.2f}% | {} | {:.1f} |\n", m.value("epoch", 0), m.value("loss", 0.0),
                           100 * m.value("accuracy", 0.0),
                           m.contains("val_accuracy") ? fmt::format("{:.2f}%", 100 * m.value("val_accuracy", 0.0))
                                                      : std::string("-"),
                           m.value("seconds", 0.0));
  if (!curve.empty())
    md += "\n## Float training\n\n| epoch | loss | accuracy | val accuracy | seconds |\n|---|---|---|---|---|\n" + curve;
  write_file_atomic(run.report_md(), md);
  return rep;
}

std::string report_table(const nlohmann::json& report) {
  std::string t = "| model | accuracy | vs float | examples | size (bytes) |\n|---|---|---|---|---|\n";
  double float_acc = -1;
  for (const auto& r : report.at("results"))
    if (r.value("model", "") == "float") float_acc = r.value("accuracy", 0.0);
  for (const auto& r : report.at("results")) {
    const double acc = r.value("accuracy", 0.0);
    std::string delta = float_acc >= 0 ? fmt::format("{:+.2f}", 100 * (acc - float_acc)) : "-";
    t += fmt::format("| {} | {:.2f}% | {} | {} | {} |\n", r.value("model", ""), 100 * acc, delta,
                     r.value("examples", 0), r.value("size_bytes", 0));
  }
  return t;
}

nlohmann::json run_stages(const recipe::Recipe& rc, const RunFolder& run, const StageOptions& opt) {
  nlohmann::json out = {{"recipe", rc.name}, {"run_dir", run.root.string()}, {"stages", nlohmann::json::array()}};
  for (recipe::Stage s : rc.stages) {
    switch (s) {
      case recipe::Stage::train: out["stages"].push_back(train_stage(rc, run, opt)); break;
      case recipe::Stage::eval: out["stages"].push_back({{"stage", "eval"}, {"results", eval_stage(rc, run)}}); break;
      case recipe::Stage::report: out["report"] = report_stage(run); break;
    }
  }
  return out;
}

}  // namespace qatc::pipeline
