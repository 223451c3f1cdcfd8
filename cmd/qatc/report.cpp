// qatc report RUN_DIR: report.json and report.md for a run folder.
#include <iostream>

#include "command.h"
#include "pipeline/stages.h"

namespace qatc::cli {
namespace {

class Report : public Command {
 public:
  explicit Report(CLI::App& parent) {
    app = parent.add_subcommand("report", "write report.json and report.md for a run folder");
    app->add_option("run_dir", run_dir, "run folder, e.g. runs/tfmot_cnn")->required();
  }
  int execute(const Globals& g) override {
    pipeline::RunFolder run{run_dir};
    nlohmann::json rep = pipeline::report_stage(run);
    if (g.json) print_json(rep);
    else std::cout << pipeline::report_table(rep) << "\nreport: " << run.report_md().string() << std::endl;
    return 0;
  }
  std::string run_dir;
};

}  // namespace

std::unique_ptr<Command> make_report(CLI::App& parent) { return std::make_unique<Report>(parent); }

}  // namespace qatc::cli
