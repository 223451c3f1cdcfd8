// Loading a recipe: YAML text -> --set overrides -> strict typed Recipe.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "recipe/recipe.h"

namespace qatc::recipe {

// Reads and validates a recipe file. `overrides` are "dotted.key=value" strings (--set);
// a value is parsed as YAML ("3", "[3, 3]", "relu"). List items are addressed by index
// (model.layers.0.filters=16). Raises qatc::Error with file:line:col on any problem.
Recipe load_recipe(const std::filesystem::path& file, const std::vector<std::string>& overrides = {});

// Same, from text; `label` names the source in messages (a file name, "ckpt:recipe").
Recipe parse_recipe(const std::string& text, const std::string& label,
                    const std::vector<std::string>& overrides = {});

}  // namespace qatc::recipe
