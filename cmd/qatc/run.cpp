// qatc run RECIPE: every stage the recipe lists, in order.
#include <algorithm>
#include <cstdio>
#include <iostream>

#include "command.h"
#include "core/error.h"
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
    app->add_option("--from", from,
                    "float checkpoint the ptq and qat stages start from (copied to the run folder as float.ckpt); "
                    "for recipes without a train stage, e.g. fine-tuning a model trained elsewhere");
    app->add_option("--max-accuracy-drop", max_drop,
                    "exit 1 after the report when an int8 model loses more than this fraction of accuracy against "
                    "float (e.g. 0.005; overrides eval.max_accuracy_drop)")
        ->check(CLI::Range(0.0, 1.0));
  }
  int execute(const Globals& g) override {
    recipe::Recipe rc = recipe::load_recipe(flags.recipe, flags.sets);
    if (!from.empty() && std::find(rc.stages.begin(), rc.stages.end(), recipe::Stage::train) != rc.stages.end())
      fail("--from {}: the recipe's stages include train, which makes the float model; drop --from, or run the "
           "other stages with --set 'stages=[ptq, qat, convert, eval, report]'",
           from);
    pipeline::RunFolder run = pipeline::run_folder_for(rc.name, flags.out);
    nlohmann::json out = pipeline::run_stages(rc, run, {resume, from, max_drop});
    if (g.json) {
      print_json(out);
    } else if (out.contains("report")) {
      std::cout << "\n" << pipeline::report_table(out["report"]) << "\nreport: " << run.report_md().string()
                << std::endl;
    }
    if (out.contains("gate") && !out["gate"]["passed"].get<bool>()) {
      std::string all;
      for (const auto& f : out["gate"]["failures"]) all += (all.empty() ? "" : "; ") + f.get<std::string>();
      std::fprintf(stderr, "qatc: gate failed: %s\n", all.c_str());
      return 1;
    }
    return 0;
  }
  RecipeFlags flags;
  bool resume = false;
  std::string from;
  double max_drop = -1;
};

}  // namespace

std::unique_ptr<Command> make_run(CLI::App& parent) { return std::make_unique<Run>(parent); }

}  // namespace qatc::cli
