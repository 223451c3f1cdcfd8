// qatc inspect FILE: layers, shapes, parameters, MACs and quantization of a model.
#include <iostream>

#include "command.h"
#include "pipeline/inspect.h"

namespace qatc::cli {
namespace {

class Inspect : public Command {
 public:
  explicit Inspect(CLI::App& parent) {
    app = parent.add_subcommand("inspect", "show a recipe's model, a checkpoint or an int8 model: layers, shapes, "
                                           "parameters, MACs, bits, scales and zero points");
    app->add_option("file", file, "recipe (.yaml), checkpoint (.ckpt) or int8 model")->required();
  }
  int execute(const Globals& g) override {
    nlohmann::json j = pipeline::inspect_file(file);
    if (g.json) print_json(j);
    else std::cout << pipeline::inspect_text(j);
    return 0;
  }
  std::string file;
};

}  // namespace

std::unique_ptr<Command> make_inspect(CLI::App& parent) { return std::make_unique<Inspect>(parent); }

}  // namespace qatc::cli
