// qatc ptq RECIPE and qatc qat RECIPE: the two ways from a float model to a quantized one.
#include "command.h"
#include "pipeline/stages.h"
#include "recipe/load.h"

namespace qatc::cli {
namespace {

class Quantize : public Command {
 public:
  Quantize(CLI::App& parent, bool qat) : qat_(qat) {
    app = qat ? parent.add_subcommand("qat", "quantization-aware training from the float model; writes qat.ckpt")
              : parent.add_subcommand("ptq", "post-training quantization (calibration only); writes ptq.ckpt");
    flags.add(app);
    app->add_option("--from", from, "float checkpoint to start from (default: the run folder's float.ckpt)");
    if (qat) app->add_flag("--resume", resume, "continue from the run folder's qat_state.ckpt");
  }
  int execute(const Globals& g) override {
    recipe::Recipe rc = recipe::load_recipe(flags.recipe, flags.sets);
    pipeline::RunFolder run = pipeline::run_folder_for(rc.name, flags.out);
    pipeline::StageOptions opt{resume, from};
    nlohmann::json out = qat_ ? pipeline::qat_stage(rc, run, opt) : pipeline::ptq_stage(rc, run, opt);
    if (g.json) print_json(out);
    return 0;
  }
  RecipeFlags flags;
  std::string from;
  bool resume = false;
  bool qat_;
};

}  // namespace

std::unique_ptr<Command> make_ptq(CLI::App& parent) { return std::make_unique<Quantize>(parent, false); }
std::unique_ptr<Command> make_qat(CLI::App& parent) { return std::make_unique<Quantize>(parent, true); }

}  // namespace qatc::cli
