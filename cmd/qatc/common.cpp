// Shared CLI helpers.
#include <iostream>

#include "command.h"

namespace qatc::cli {

void print_json(const nlohmann::json& j) { std::cout << j.dump(2) << std::endl; }

void RecipeFlags::add(CLI::App* app) {
  app->add_option("recipe", recipe, "recipe file (YAML)")->required();
  app->add_option("--out", out, "run folder (default: runs/<recipe name>)");
  app->add_option("--set", sets, "override a recipe key, e.g. --set train.epochs=3 (repeatable)");
}

}  // namespace qatc::cli
