// qatc train RECIPE: the float training stage alone.
#include "command.h"
#include "pipeline/stages.h"
#include "recipe/load.h"

namespace qatc::cli {
namespace {

class Train : public Command {
 public:
  explicit Train(CLI::App& parent) {
    app = parent.add_subcommand("train", "train the float model; writes float.ckpt into the run folder");
    flags.add(app);
    app->add_flag("--resume", resume, "continue from the run folder's train_state.ckpt");
  }
  int execute(const Globals& g) override {
    recipe::Recipe rc = recipe::load_recipe(flags.recipe, flags.sets);
    pipeline::RunFolder run = pipeline::run_folder_for(rc.name, flags.out);
    nlohmann::json out = pipeline::train_stage(rc, run, {resume, {}});
    if (g.json) print_json(out);
    return 0;
  }
  RecipeFlags flags;
  bool resume = false;
};

}  // namespace

std::unique_ptr<Command> make_train(CLI::App& parent) { return std::make_unique<Train>(parent); }

}  // namespace qatc::cli
