// Strict YAML map reader.
#include "recipe/yaml_reader.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace qatc::recipe {
namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0u : 1u)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

const char* kind_name(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Scalar: return "a scalar";
    case YAML::NodeType::Null: return "empty";
    default: return "undefined";
  }
}

}  // namespace

std::string where_of(const ReadContext& ctx, const YAML::Node& n, const std::string& kpath) {
  // A value set on the command line is reported as such; its YAML marks are meaningless.
  for (std::string p = kpath;;) {
    if (ctx.overridden.count(p)) return "--set " + p;
    auto dot = p.rfind('.');
    if (dot == std::string::npos) break;
    p.resize(dot);
  }
  if (n.IsDefined() && n.Mark().line >= 0)
    return ctx.file + ":" + std::to_string(n.Mark().line + 1) + ":" + std::to_string(n.Mark().column + 1);
  return ctx.file;
}

MapReader::MapReader(YAML::Node node, std::string path, ReadContext& ctx)
    : node_(std::move(node)), path_(std::move(path)), ctx_(ctx) {
  if (node_.IsDefined() && !node_.IsNull() && !node_.IsMap())
    throw Error(where(node_, path_) + ": '" + (path_.empty() ? "recipe" : path_) + "' must be a map of keys, got " +
                kind_name(node_));
}

std::string MapReader::where(const YAML::Node& n, const std::string& kpath) const { return where_of(ctx_, n, kpath); }

bool MapReader::has(const std::string& key) const {
  if (!node_.IsMap()) return false;
  YAML::Node v = node_[key];
  return v.IsDefined() && !v.IsNull();
}

YAML::Node MapReader::node(const std::string& key) {
  known_.insert(key);
  if (!node_.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
  return node_[key];
}

MapReader MapReader::map(const std::string& key) {
  known_.insert(key);
  YAML::Node n = node_.IsMap() ? node_[key] : YAML::Node();
  if (n.IsDefined() && !n.IsNull() && !n.IsMap()) error(key, "'" + key_path(key) + "' must be a map of keys, got " + kind_name(n));
  return MapReader(n.IsDefined() ? n : YAML::Node(), key_path(key), ctx_);
}

void MapReader::error(const std::string& key, const std::string& message) const {
  YAML::Node n = node_.IsMap() ? node_[key] : YAML::Node();
  if (!n.IsDefined() || n.IsNull()) n = node_;
  throw Error(where(n, key_path(key)) + ": " + message);
}

void MapReader::error_here(const std::string& message) const { throw Error(where(node_, path_) + ": " + message); }

void MapReader::note_default(const std::string& key, const std::string& value) {
  ctx_.defaults_used.push_back(key_path(key) + "=" + value);
}

std::string MapReader::scalar(const std::string& key, const char* what) {
  YAML::Node n = node_[key];
  if (!n.IsScalar()) error(key, "'" + key_path(key) + "' must be " + what + ", got " + kind_name(n));
  return n.Scalar();
}

void MapReader::require(const std::string& key) {
  if (!has(key)) error_here("missing required key '" + key_path(key) + "'");
}

void MapReader::check_range(const std::string& key, double value, double lo, double hi) {
  if (!(value >= lo && value <= hi)) {
    std::string range = hi == std::numeric_limits<double>::infinity() ? fmt::format(">= {}", lo)
                                                                       : fmt::format("in [{}, {}]", lo, hi);
    error(key, fmt::format("'{}' is {}, must be {}", key_path(key), value, range));
  }
}

bool MapReader::read(const std::string& key, int64_t& out) {
  known_.insert(key);
  if (!has(key)) {
    note_default(key, std::to_string(out));
    return false;
  }
  std::string s = scalar(key, "an integer");
  try {
    size_t used = 0;
    long long v = std::stoll(s, &used, 10);
    if (used != s.size()) throw std::invalid_argument(s);
    out = v;
  } catch (const std::exception&) {
    error(key, "'" + key_path(key) + "' must be an integer, got '" + s + "'");
  }
  return true;
}

bool MapReader::read(const std::string& key, uint64_t& out) {
  int64_t v = static_cast<int64_t>(out);
  bool present = read(key, v);
  if (present) {
    if (v < 0) error(key, "'" + key_path(key) + "' must be >= 0, got " + std::to_string(v));
    out = static_cast<uint64_t>(v);
  }
  return present;
}

bool MapReader::read(const std::string& key, double& out) {
  known_.insert(key);
  if (!has(key)) {
    note_default(key, fmt::format("{}", out));
    return false;
  }
  std::string s = scalar(key, "a number");
  try {
    size_t used = 0;
    double v = std::stod(s, &used);
    if (used != s.size() || !std::isfinite(v)) throw std::invalid_argument(s);
    out = v;
  } catch (const std::exception&) {
    error(key, "'" + key_path(key) + "' must be a number, got '" + s + "'");
  }
  return true;
}

bool MapReader::read(const std::string& key, bool& out) {
  known_.insert(key);
  if (!has(key)) {
    note_default(key, out ? "true" : "false");
    return false;
  }
  std::string s = scalar(key, "true or false");
  if (s == "true") out = true;
  else if (s == "false") out = false;
  else error(key, "'" + key_path(key) + "' must be true or false, got '" + s + "'");
  return true;
}

bool MapReader::read(const std::string& key, std::string& out) {
  known_.insert(key);
  if (!has(key)) {
    note_default(key, "'" + out + "'");
    return false;
  }
  out = scalar(key, "a string");
  return true;
}

bool MapReader::read_int_list(const std::string& key, std::vector<int64_t>& out) {
  known_.insert(key);
  if (!has(key)) return false;
  YAML::Node n = node_[key];
  if (!n.IsSequence()) error(key, "'" + key_path(key) + "' must be a list of integers, got " + kind_name(n));
  out.clear();
  for (const auto& item : n) {
    try {
      if (!item.IsScalar()) throw std::invalid_argument("");
      size_t used = 0;
      long long v = std::stoll(item.Scalar(), &used, 10);
      if (used != item.Scalar().size()) throw std::invalid_argument("");
      out.push_back(v);
    } catch (const std::exception&) {
      throw Error(where(item, key_path(key)) + ": '" + key_path(key) + "' must be a list of integers");
    }
  }
  return true;
}

bool MapReader::read_pair(const std::string& key, int64_t& a, int64_t& b) {
  known_.insert(key);
  if (!has(key)) {
    note_default(key, a == b ? std::to_string(a) : fmt::format("[{}, {}]", a, b));
    return false;
  }
  YAML::Node n = node_[key];
  if (n.IsSequence()) {
    std::vector<int64_t> v;
    read_int_list(key, v);
    if (v.size() != 2) error(key, "'" + key_path(key) + "' must be an integer or a list of two integers");
    a = v[0];
    b = v[1];
  } else {
    int64_t v = 0;
    read(key, v);
    a = b = v;
  }
  return true;
}

void MapReader::finish() {
  if (!node_.IsMap()) return;
  for (const auto& kv : node_) {
    std::string key = kv.first.as<std::string>("");
    if (known_.count(key)) continue;
    std::string hint;
    size_t best = 3;
    for (const auto& k : known_) {
      size_t d = edit_distance(key, k);
      if (d < best) {
        best = d;
        hint = k;
      }
    }
    std::string where_s = where(kv.first, key_path(key));
    std::string section = path_.empty() ? "the recipe" : "'" + path_ + "'";
    throw Error(where_s + ": unknown key '" + key + "' in " + section +
                (hint.empty() ? "" : "; did you mean '" + hint + "'?") + " (see docs/recipes.md)");
  }
}

}  // namespace qatc::recipe
