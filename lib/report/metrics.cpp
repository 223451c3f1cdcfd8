// metrics.jsonl reading and appending.
#include "report/metrics.h"

#include <sstream>

#include "core/error.h"
#include "core/file.h"

namespace qatc::report {

void append_metrics(const std::filesystem::path& run_dir, const nlohmann::json& line) {
  const auto path = run_dir / "metrics.jsonl";
  std::string text;
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) text = read_file(path);
  if (!text.empty() && text.back() != '\n') text += '\n';
  text += line.dump() + "\n";
  write_file_atomic(path, text);
}

std::vector<nlohmann::json> read_metrics(const std::filesystem::path& run_dir) {
  const auto path = run_dir / "metrics.jsonl";
  std::vector<nlohmann::json> out;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return out;
  std::istringstream in(read_file(path));
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty()) continue;
    try {
      out.push_back(nlohmann::json::parse(line));
    } catch (const nlohmann::json::exception&) {
      fail("{}:{}: not a JSON line; the file was edited or damaged", path.string(), lineno);
    }
  }
  return out;
}

}  // namespace qatc::report
