// qatc eval MODEL: accuracy and loss of a model file on a dataset split.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>

#include <fmt/format.h>

#include "command.h"
#include "core/error.h"
#include "pipeline/model_file.h"

namespace qatc::cli {
namespace {

class Eval : public Command {
 public:
  explicit Eval(CLI::App& parent) {
    app = parent.add_subcommand("eval", "evaluate a model file (default: the test split of its recipe's dataset)");
    app->add_option("model", model, "model file (float.ckpt)")->required();
    app->add_option("--data", data, "DATASET[:SPLIT], e.g. mnist:test (default: the model's recipe dataset, test)");
    app->add_option("--data-path", data_path, "folder holding the dataset files (default: the standard location)");
    app->add_option("--batch-size", batch, "evaluation batch size")->check(CLI::Range(1, 1 << 20));
    app->add_option("--max-accuracy-drop", max_drop,
                    "exit 1 when MODEL's accuracy is more than this fraction below the baseline's (e.g. 0.005)")
        ->check(CLI::Range(0.0, 1.0));
    app->add_option("--baseline", baseline, "float model to compare against (default: float.ckpt next to MODEL)");
  }
  int execute(const Globals& g) override {
    pipeline::DataChoice choice = data.empty() ? pipeline::DataChoice{} : pipeline::parse_data_spec(data);
    choice.path = data_path;
    std::optional<pipeline::ModelEval> base;
    if (max_drop >= 0) {
      const std::filesystem::path b =
          baseline.empty() ? std::filesystem::path(model).parent_path() / "float.ckpt" : std::filesystem::path(baseline);
      std::error_code ec;
      if (!std::filesystem::exists(b, ec))
        fail("--max-accuracy-drop: baseline {} not found; pass --baseline FILE", b.string());
      base = pipeline::evaluate_model_file(b, choice, batch);
    }
    pipeline::ModelEval me = pipeline::evaluate_model_file(model, choice, batch);
    const double drop = base ? base->result.accuracy - me.result.accuracy : 0.0;
    if (g.json) {
      nlohmann::json j = {{"model", model},
                          {"kind", me.kind},
                          {"dataset", me.dataset},
                          {"accuracy", me.result.accuracy},
                          {"examples", me.result.examples},
                          {"correct", me.result.correct},
                          {"loss", me.result.loss},
                          {"size_bytes", me.size_bytes},
                          {"seconds", me.result.seconds}};
      if (base) j["gate"] = {{"baseline_accuracy", base->result.accuracy}, {"max_accuracy_drop", max_drop},
                             {"passed", drop <= max_drop}};
      print_json(j);
    } else {
      std::cout << fmt::format("{} ({}) on {}: accuracy {:.2f}% ({}/{}), loss {:.4f}, {} bytes\n", model, me.kind,
                               me.dataset, 100 * me.result.accuracy, me.result.correct, me.result.examples,
                               me.result.loss, me.size_bytes);
    }
    if (base && drop > max_drop) {
      std::fprintf(stderr, "qatc: gate failed: accuracy %.2f%% is %.2f points below the baseline %.2f%%, more than the allowed %.2f\n",
                   100 * me.result.accuracy, 100 * drop, 100 * base->result.accuracy, 100 * max_drop);
      return 1;
    }
    return 0;
  }
  std::string model, data, data_path, baseline;
  int64_t batch = 256;
  double max_drop = -1;
};

}  // namespace

std::unique_ptr<Command> make_eval(CLI::App& parent) { return std::make_unique<Eval>(parent); }

}  // namespace qatc::cli
