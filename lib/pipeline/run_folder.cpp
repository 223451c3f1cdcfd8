// Run folder location.
#include "pipeline/run_folder.h"

namespace qatc::pipeline {

RunFolder run_folder_for(const std::string& recipe_name, const std::string& out_flag) {
  return RunFolder{out_flag.empty() ? std::filesystem::path("runs") / recipe_name : std::filesystem::path(out_flag)};
}

}  // namespace qatc::pipeline
