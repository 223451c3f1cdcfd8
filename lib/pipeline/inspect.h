// `qatc inspect`: the structure of a recipe's model, a checkpoint or an int8 model file:
// layers, shapes, parameter counts, multiply-accumulates, and per layer the quantization
// (bits, scales, zero points) where there is one.
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace qatc::pipeline {

// {"file", "kind", "params", "macs", "layers": [...]}; raises qatc::Error on a bad file.
nlohmann::json inspect_file(const std::filesystem::path& file);

// A plain-text table of inspect_file's result.
std::string inspect_text(const nlohmann::json& j);

}  // namespace qatc::pipeline
