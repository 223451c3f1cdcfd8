// Strict reading of YAML maps into typed fields: every key read is recorded, unknown keys,
// wrong types and out-of-range values raise qatc::Error as "file:line:col: message" (or
// "--set key=value: message" for command-line overrides).
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace qatc::recipe {

struct ReadContext {
  std::string file;
  std::set<std::string> overridden;        // key paths set by --set
  std::vector<std::string> defaults_used;  // "train.batch_size=32"
};

class MapReader {
 public:
  // `node` must be a map (a null node reads as an empty map); `path` is its key path.
  MapReader(YAML::Node node, std::string path, ReadContext& ctx);

  bool has(const std::string& key) const;
  // The raw node of a key (marks it as known). Undefined node when absent.
  YAML::Node node(const std::string& key);
  // A sub-map reader (an absent key reads as an empty map).
  MapReader map(const std::string& key);

  // Reads a scalar into `out` when present; records the default otherwise.
  bool read(const std::string& key, int64_t& out);
  bool read(const std::string& key, uint64_t& out);
  bool read(const std::string& key, double& out);
  bool read(const std::string& key, bool& out);
  bool read(const std::string& key, std::string& out);
  bool read_int_list(const std::string& key, std::vector<int64_t>& out);
  // An int or a pair [a, b] (kernel sizes, strides).
  bool read_pair(const std::string& key, int64_t& a, int64_t& b);
  template <typename E>
  bool read_enum(const std::string& key, E& out, const std::vector<std::pair<std::string, E>>& names);

  void require(const std::string& key);
  void check_range(const std::string& key, double value, double lo, double hi);
  // Raises for the first key that was never read, with a did-you-mean hint.
  void finish();

  [[noreturn]] void error(const std::string& key, const std::string& message) const;
  [[noreturn]] void error_here(const std::string& message) const;
  std::string key_path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  const std::string& path() const { return path_; }
  ReadContext& context() { return ctx_; }

 private:
  std::string where(const YAML::Node& n, const std::string& kpath) const;
  std::string scalar(const std::string& key, const char* what);
  void note_default(const std::string& key, const std::string& value);

  YAML::Node node_;
  std::string path_;
  ReadContext& ctx_;
  std::set<std::string> known_;
};

std::string where_of(const ReadContext& ctx, const YAML::Node& n, const std::string& kpath);

template <typename E>
bool MapReader::read_enum(const std::string& key, E& out, const std::vector<std::pair<std::string, E>>& names) {
  std::string s;
  std::string default_name;
  for (const auto& [n, v] : names)
    if (v == out) default_name = n;
  known_.insert(key);
  if (!has(key)) {
    note_default(key, default_name);
    return false;
  }
  s = scalar(key, "a name");
  std::string choices;
  for (const auto& [n, v] : names) {
    if (n == s) {
      out = v;
      return true;
    }
    choices += (choices.empty() ? "" : ", ") + n;
  }
  error(key, "unknown value '" + s + "' for '" + key + "'; expected one of: " + choices);
}

}  // namespace qatc::recipe
