// qatc eval MODEL: accuracy and loss of a model file on a dataset split.
#include <iostream>

#include <fmt/format.h>

#include "command.h"
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
  }
  int execute(const Globals& g) override {
    pipeline::DataChoice choice = data.empty() ? pipeline::DataChoice{} : pipeline::parse_data_spec(data);
    choice.path = data_path;
    pipeline::ModelEval me = pipeline::evaluate_model_file(model, choice, batch);
    if (g.json) {
      print_json({{"model", model},
                  {"kind", me.kind},
                  {"dataset", me.dataset},
                  {"accuracy", me.result.accuracy},
                  {"examples", me.result.examples},
                  {"correct", me.result.correct},
                  {"loss", me.result.loss},
                  {"size_bytes", me.size_bytes},
                  {"seconds", me.result.seconds}});
    } else {
      std::cout << fmt::format("{} ({}) on {}: accuracy {:.2f}% ({}/{}), loss {:.4f}, {} bytes\n", model, me.kind,
                               me.dataset, 100 * me.result.accuracy, me.result.correct, me.result.examples,
                               me.result.loss, me.size_bytes);
    }
    return 0;
  }
  std::string model, data, data_path;
  int64_t batch = 256;
};

}  // namespace

std::unique_ptr<Command> make_eval(CLI::App& parent) { return std::make_unique<Eval>(parent); }

}  // namespace qatc::cli
