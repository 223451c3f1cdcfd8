// Standard datasets by name: default folders, fetch on first use, loading one split.
#include "data/catalog.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "data/idx.h"

extern char** environ;

namespace qatc::data {
namespace {

namespace fs = std::filesystem;

struct SplitSpec {
  const char* name;
  const char* images;  // canonical file name; a ".gz" twin is accepted too
  const char* labels;
  int64_t n;
};

constexpr std::array<SplitSpec, 2> kSplits = {{
    {"train", "train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000},
    {"test", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000},
}};

struct DatasetSpec {
  const char* name;
  const char* title;
  int32_t classes;
  int64_t h, w, c;
  const char* system_dir;  // read in place when it holds the files; nullptr if none
};

constexpr std::array<DatasetSpec, 2> kDatasets = {{
    {"mnist", "MNIST", 10, 28, 28, 1, nullptr},
    {"fashion_mnist", "Fashion-MNIST", 10, 28, 28, 1, "/usr/share/datasets/fashion-mnist"},
}};

const DatasetSpec& find_dataset(const std::string& name) {
  for (const auto& d : kDatasets) {
    if (name == d.name) return d;
  }
  fail("unknown dataset '{}'; known datasets: {}", name, fmt::join(known_datasets(), ", "));
}

const SplitSpec& find_split(const DatasetSpec& ds, const std::string& split) {
  for (const auto& s : kSplits) {
    if (split == s.name) return s;
  }
  fail("{}: unknown split '{}'; known splits: train, test", ds.name, split);
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// dir/base, else dir/base.gz; nullopt when neither is a file.
std::optional<fs::path> find_idx(const fs::path& dir, const char* base) {
  fs::path plain = dir / base;
  if (is_file(plain)) return plain;
  fs::path gz = dir / (std::string(base) + ".gz");
  if (is_file(gz)) return gz;
  return std::nullopt;
}

bool has_split(const fs::path& dir, const SplitSpec& s) {
  return find_idx(dir, s.images) && find_idx(dir, s.labels);
}

bool has_all(const fs::path& dir) {
  for (const auto& s : kSplits) {
    if (!has_split(dir, s)) return false;
  }
  return true;
}

// Where a fetch writes: $QATC_DATA_DIR/<name>, else ${XDG_CACHE_HOME:-$HOME/.cache}/qatc/<name>.
fs::path cache_dir(const DatasetSpec& ds) {
  if (std::string d = env("QATC_DATA_DIR"); !d.empty()) return fs::path(d) / ds.name;
  // XDG says relative values are invalid and must be ignored.
  if (std::string x = env("XDG_CACHE_HOME"); !x.empty() && fs::path(x).is_absolute()) {
    return fs::path(x) / "qatc" / ds.name;
  }
  if (std::string h = env("HOME"); !h.empty()) return fs::path(h) / ".cache" / "qatc" / ds.name;
  fail("{}: no default data folder (neither QATC_DATA_DIR nor HOME is set); set QATC_DATA_DIR or data.path",
       ds.name);
}

enum class Place { override_dir, system_dir, cache_dir };

struct Candidate {
  fs::path dir;
  Place place;
};

// Default folders in lookup order (see catalog.h). An explicitly set QATC_DATA_DIR wins over
// the system copy when it holds the files: the user asked for that folder.
std::vector<Candidate> default_candidates(const DatasetSpec& ds) {
  std::vector<Candidate> out;
  const fs::path cache = cache_dir(ds);
  if (!env("QATC_DATA_DIR").empty() && ds.system_dir != nullptr) out.push_back({cache, Place::override_dir});
  if (ds.system_dir != nullptr) out.push_back({ds.system_dir, Place::system_dir});
  out.push_back({cache, Place::cache_dir});
  return out;
}

// <root>/<name>/fetch.sh for the roots in catalog.h's order; nullopt when none exists.
std::optional<fs::path> find_fetch_script(const DatasetSpec& ds) {
  std::vector<fs::path> roots;
  if (std::string d = env("QATC_DATASETS_DIR"); !d.empty()) {
    roots.emplace_back(d);
  } else {
    std::error_code ec;
    fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
      fs::path dir = exe.parent_path();
      roots = {dir / ".." / "datasets", dir / "datasets", dir / ".." / "share" / "qatc" / "datasets"};
    }
  }
  for (const auto& root : roots) {
    fs::path script = root / ds.name / "fetch.sh";
    if (is_file(script)) return script.lexically_normal();
  }
  return std::nullopt;
}

std::string fetch_command(const DatasetSpec& ds, const std::optional<fs::path>& script, const fs::path& target) {
  std::string s = script ? script->string() : fmt::format("<qatc sources>/datasets/{}/fetch.sh", ds.name);
  return fmt::format("bash {} {}", s, target.string());
}

// Runs `bash script target` with its stdout sent to stderr (stdout is for machine output).
// Returns a description of the failure, or nullopt on success.
std::optional<std::string> run_fetch(const fs::path& script, const fs::path& target) {
  std::string bash = "bash", s = script.string(), t = target.string();
  char* argv[] = {bash.data(), s.data(), t.data(), nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, "bash", &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return fmt::format("cannot start bash: {}", std::strerror(rc));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return fmt::format("waiting for the fetch script failed: {}", std::strerror(errno));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return std::nullopt;
  if (WIFEXITED(status)) return fmt::format("the fetch script exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("the fetch script was killed by signal {}", WTERMSIG(status));
  return std::string("the fetch script failed");
}

struct Located {
  fs::path dir;
  std::string hint;  // what to do when a file there turns out damaged
};

Located locate_explicit(const DatasetSpec& ds, const SplitSpec& sp, const fs::path& dir) {
  std::error_code ec;
  fs::file_status st = fs::status(dir, ec);
  if (!fs::exists(st)) {
    fail("data.path {}: folder not found; put the four {} IDX files ({}, {}, {}, {}) there, or remove data.path "
         "to use the default location",
         dir.string(), ds.title, kSplits[0].images, kSplits[0].labels, kSplits[1].images, kSplits[1].labels);
  }
  if (!fs::is_directory(st)) {
    fail("data.path {}: is a file; data.path must be the folder holding the {} IDX files", dir.string(), ds.title);
  }
  std::vector<std::string> missing;
  for (const char* base : {sp.images, sp.labels}) {
    if (!find_idx(dir, base)) missing.push_back(fmt::format("{}[.gz]", base));
  }
  if (!missing.empty()) {
    fail("data.path {}: {} not found there (needed for the {} split of {}); put the files there, or remove "
         "data.path to use the default location",
         dir.string(), fmt::join(missing, " and "), sp.name, ds.title);
  }
  return {dir, fmt::format("replace it with a complete copy of the {} file (see datasets/{}/CARD.md)", ds.title,
                           ds.name)};
}

Located locate_default(const DatasetSpec& ds, const SplitSpec& sp) {
  const std::optional<fs::path> script = find_fetch_script(ds);
  auto found = [&]() -> std::optional<Located> {
    for (const auto& c : default_candidates(ds)) {
      if (!has_split(c.dir, sp)) continue;
      if (c.place == Place::system_dir) {
        return Located{c.dir, "the Debian package's copy is damaged; reinstall it: apt-get install --reinstall "
                              "dataset-fashion-mnist"};
      }
      return Located{c.dir, fmt::format("delete it and fetch again: {}", fetch_command(ds, script, c.dir))};
    }
    return std::nullopt;
  };
  if (auto l = found()) return *l;

  const fs::path target = cache_dir(ds);
  const std::string command = fetch_command(ds, script, target);
  if (!script) {
    fail("{}: the {} split is not in {} and qatc cannot find its fetch script (set QATC_DATASETS_DIR to the "
         "datasets/ folder of the qatc sources); run: {}, or put the IDX files in a folder and set data.path",
         ds.name, sp.name, target.string(), command);
  }
  spdlog::info("{}: the {} split is not in {}; fetching it: {}", ds.name, sp.name, target.string(), command);
  if (auto err = run_fetch(*script, target)) {
    fail("{}: fetching into {} failed ({}; see its messages above); run: {}, or put the IDX files in a folder and "
         "set data.path",
         ds.name, target.string(), *err, command);
  }
  if (auto l = found()) return *l;
  fail("{}: the fetch script succeeded but the {} split is still not in {}; run: {}, or put the IDX files in a "
       "folder and set data.path",
       ds.name, sp.name, target.string(), command);
}

}  // namespace

std::vector<std::string> known_datasets() {
  std::vector<std::string> out;
  for (const auto& d : kDatasets) out.emplace_back(d.name);
  return out;
}

fs::path default_dataset_dir(const std::string& dataset) {
  const DatasetSpec& ds = find_dataset(dataset);
  for (const auto& c : default_candidates(ds)) {
    if (has_all(c.dir)) return c.dir;
  }
  return cache_dir(ds);
}

Dataset load_dataset(const std::string& dataset, const std::string& split, const std::string& path) {
  const DatasetSpec& ds = find_dataset(dataset);
  const SplitSpec& sp = find_split(ds, split);
  const Located loc = path.empty() ? locate_default(ds, sp) : locate_explicit(ds, sp, path);

  const fs::path images = *find_idx(loc.dir, sp.images);
  const fs::path labels = *find_idx(loc.dir, sp.labels);
  Dataset d = read_idx(images, labels, fmt::format("{}/{}", ds.name, sp.name), ds.classes, loc.hint);
  if (d.h != ds.h || d.w != ds.w || d.c != ds.c) {
    fail("{}: images are {}x{}x{}, but {} images are {}x{}x{}; this folder holds a different dataset",
         images.string(), d.h, d.w, d.c, ds.title, ds.h, ds.w, ds.c);
  }
  if (d.n != sp.n) {
    spdlog::warn("{}: {} images, the standard {} {} split has {}", images.string(), d.n, ds.title, sp.name, sp.n);
  }
  spdlog::info("{}: {} images {}x{}x{} from {}", d.name, d.n, d.h, d.w, d.c, loc.dir.string());
  return d;
}

Dataset load_split(const recipe::DataSpec& spec, const std::string& split) {
  Dataset ds = load_dataset(spec.dataset, split, spec.path);
  pad_images(ds, spec.pad);
  return ds;
}

void pad_images(Dataset& ds, int64_t pad) {
  if (pad <= 0) return;
  const int64_t h = ds.h + 2 * pad, w = ds.w + 2 * pad, row = ds.w * ds.c;
  std::vector<uint8_t> out(static_cast<size_t>(ds.n * h * w * ds.c), 0);
  for (int64_t i = 0; i < ds.n; ++i)
    for (int64_t y = 0; y < ds.h; ++y)
      std::memcpy(out.data() + ((i * h + y + pad) * w + pad) * ds.c, ds.images.data() + (i * ds.h + y) * row,
                  static_cast<size_t>(row));
  ds.images = std::move(out);
  ds.h = h;
  ds.w = w;
}

}  // namespace qatc::data
