// metrics.jsonl: one JSON object per line (per epoch, per stage) in the run folder,
// rewritten atomically on every append so a crash never leaves a torn line.
#pragma once

#include <filesystem>
#include <vector>

#include <nlohmann/json.hpp>

namespace qatc::report {

void append_metrics(const std::filesystem::path& run_dir, const nlohmann::json& line);
std::vector<nlohmann::json> read_metrics(const std::filesystem::path& run_dir);

}  // namespace qatc::report
