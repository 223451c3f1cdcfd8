// qatc run RECIPE: every stage the recipe lists, in order.
#include <iostream>

#include "command.h"
#include "pipeline/stages.h"
#include "recipe/load.h"

namespace qatc::cli {
namespace {

class Run : public Command {
 public:
  explicit Run(CLI::App& parent) {
    app = parent.add_subcommand("run", "run the recipe's stages in order (default: train, eval, report)");
    flags.add(app);
    app->add_flag("--resume", resume, "continue training from the run folder's last checkpoint");
  }
  int execute(const Globals& g) override {
    recipe::Recipe rc = recipe::load_recipe(flags.recipe, flags.sets);
    pipeline::RunFolder run = pipeline::run_folder_for(rc.name, flags.out);
    nlohmann::json out = pipeline::run_stages(rc, run, {resume, {}});
    if (g.json) {
      print_json(out);
    } else if (out.contains("report")) {
      std::cout << "\n" << pipeline::report_table(out["report"]) << "\nreport: " << run.report_md().string()
                << std::endl;
    }
    return 0;
  }
  RecipeFlags flags;
  bool resume = false;
};

}  // namespace

std::unique_ptr<Command> make_run(CLI::App& parent) { return std::make_unique<Run>(parent); }

}  // namespace qatc::cli
