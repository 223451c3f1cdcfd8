// metrics.jsonl: one JSON object per line (per epoch, per stage) in the run folder,
// rewritten atomically on every append so a crash never leaves a torn line.
#pragma once

#include <filesystem>
#include <limits>
#include <vector>

#include <nlohmann/json.hpp>

namespace qatc::report {

void append_metrics(const std::filesystem::path& run_dir, const nlohmann::json& line);
std::vector<nlohmann::json> read_metrics(const std::filesystem::path& run_dir);

// j[key] as a double: NaN when it is null (a NaN or infinite value, which JSON cannot hold,
// e.g. the loss of a diverged model), `fallback` when absent.
inline double number(const nlohmann::json& j, const char* key, double fallback = 0.0) {
  auto it = j.find(key);
  if (it == j.end()) return fallback;
  return it->is_number() ? it->get<double>() : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace qatc::report
