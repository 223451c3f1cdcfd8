// Tests for the dataset catalog: default folders (env vars), explicit data.path, fetch on first
// use through a stand-in fetch script, error messages, and the real data when it is installed.
#include <doctest/doctest.h>
#include <unistd.h>
#include <zlib.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/catalog.h"
#include "fixtures/temp_dir.h"

namespace fs = std::filesystem;
using qatc::data::Dataset;
using qatc::data::default_dataset_dir;
using qatc::data::known_datasets;
using qatc::data::load_dataset;

namespace {

// A temp folder named after this test file.
class TempDir : public qatc::testing::TempDir {
 public:
  TempDir() : qatc::testing::TempDir("qatc_catalog_test") {}
};

// Sets or unsets an environment variable for one scope and restores the old value after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::optional<std::string>& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value->c_str(), 1);
    } else {
      ::unsetenv(name);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

void put_be32(std::string& s, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) s.push_back(static_cast<char>((v >> shift) & 0xff));
}

void write_plain(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

void write_gz(const fs::path& p, const std::string& bytes) {
  gzFile f = gzopen(p.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

// Fake split files: n images of side x side whose pixel i of image k is (k*7 + i) % 256,
// labels k % 10. Images gzipped, labels plain, so both forms are found.
void write_fake_split(const fs::path& dir, const std::string& prefix, uint32_t n, uint32_t side = 28) {
  fs::create_directories(dir);
  std::string img;
  put_be32(img, 0x00000803);
  put_be32(img, n);
  put_be32(img, side);
  put_be32(img, side);
  for (uint32_t k = 0; k < n; ++k) {
    for (uint32_t i = 0; i < side * side; ++i) img.push_back(static_cast<char>((k * 7 + i) % 256));
  }
  std::string lab;
  put_be32(lab, 0x00000801);
  put_be32(lab, n);
  for (uint32_t k = 0; k < n; ++k) lab.push_back(static_cast<char>(k % 10));
  write_gz(dir / (prefix + "-images-idx3-ubyte.gz"), img);
  write_plain(dir / (prefix + "-labels-idx1-ubyte"), lab);
}

void write_fake_dataset(const fs::path& dir) {
  write_fake_split(dir, "train", 5);
  write_fake_split(dir, "t10k", 3);
}

void check_fake(const Dataset& d, int64_t n, const std::string& name) {
  CHECK(d.name == name);
  CHECK(d.n == n);
  CHECK(d.h == 28);
  CHECK(d.w == 28);
  CHECK(d.c == 1);
  CHECK(d.classes == 10);
  REQUIRE(d.images.size() == static_cast<size_t>(n * 28 * 28));
  for (int64_t k = 0; k < n; ++k) {
    CHECK(d.labels[static_cast<size_t>(k)] == k % 10);
    CHECK(d.images[static_cast<size_t>(k * 784 + 100)] == (k * 7 + 100) % 256);
  }
}

std::string error_of(const std::string& dataset, const std::string& split, const std::string& path) {
  try {
    load_dataset(dataset, split, path);
  } catch (const qatc::Error& e) {
    return e.what();
  }
  FAIL("expected qatc::Error for " << dataset << " " << split << " '" << path << "'");
  return {};
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

void write_script(const fs::path& datasets_dir, const std::string& name, const std::string& body) {
  fs::create_directories(datasets_dir / name);
  write_plain(datasets_dir / name / "fetch.sh", body);
}

}  // namespace

TEST_CASE("catalog: known datasets are mnist and fashion_mnist") {
  CHECK(known_datasets() == std::vector<std::string>{"mnist", "fashion_mnist"});
}

TEST_CASE("catalog: unknown dataset and unknown split are errors listing the known names") {
  std::string msg = error_of("cifar100", "test", "");
  CHECK(contains(msg, "cifar100"));
  CHECK(contains(msg, "mnist, fashion_mnist"));
  msg = error_of("mnist", "validation", "");
  CHECK(contains(msg, "validation"));
  CHECK(contains(msg, "train, test"));
  CHECK_THROWS_AS(default_dataset_dir("imagenet"), qatc::Error);
}

TEST_CASE("catalog: QATC_DATA_DIR holding the files is where load_dataset reads mnist") {
  TempDir root, no_scripts;
  write_fake_dataset(root / "mnist");
  ScopedEnv data("QATC_DATA_DIR", root.path().string());
  ScopedEnv scripts("QATC_DATASETS_DIR", no_scripts.path().string());  // a fetch would fail loudly
  CHECK(default_dataset_dir("mnist") == root / "mnist");
  check_fake(load_dataset("mnist", "test", ""), 3, "mnist/test");
  check_fake(load_dataset("mnist", "train", ""), 5, "mnist/train");
}

TEST_CASE("catalog: QATC_DATA_DIR holding fashion_mnist files wins over the system copy") {
  TempDir root, no_scripts;
  write_fake_dataset(root / "fashion_mnist");
  ScopedEnv data("QATC_DATA_DIR", root.path().string());
  ScopedEnv scripts("QATC_DATASETS_DIR", no_scripts.path().string());
  CHECK(default_dataset_dir("fashion_mnist") == root / "fashion_mnist");
  check_fake(load_dataset("fashion_mnist", "test", ""), 3, "fashion_mnist/test");
}

TEST_CASE("catalog: the cache folder follows XDG_CACHE_HOME then HOME") {
  TempDir root;
  ScopedEnv data("QATC_DATA_DIR", std::nullopt);
  {
    ScopedEnv xdg("XDG_CACHE_HOME", (root / "xdg").string());
    CHECK(default_dataset_dir("mnist") == root / "xdg" / "qatc" / "mnist");
  }
  {
    ScopedEnv xdg("XDG_CACHE_HOME", std::string("relative/ignored"));
    ScopedEnv home("HOME", (root / "home").string());
    CHECK(default_dataset_dir("mnist") == root / "home" / ".cache" / "qatc" / "mnist");
  }
}

TEST_CASE("catalog: an explicit data.path is read and never fetched into") {
  TempDir root;
  write_fake_dataset(root / "mine");
  check_fake(load_dataset("mnist", "test", (root / "mine").string()), 3, "mnist/test");

  std::string missing = (root / "does-not-exist").string();
  std::string msg = error_of("mnist", "test", missing);
  CHECK(contains(msg, missing));
  CHECK(contains(msg, "not found"));
  CHECK_FALSE(fs::exists(missing));

  fs::create_directories(root / "empty");
  msg = error_of("mnist", "train", (root / "empty").string());
  CHECK(contains(msg, (root / "empty").string()));
  CHECK(contains(msg, "train-images-idx3-ubyte"));

  write_plain(root / "afile", "x");
  msg = error_of("mnist", "train", (root / "afile").string());
  CHECK(contains(msg, (root / "afile").string()));
  CHECK(contains(msg, "folder"));
}

TEST_CASE("catalog: images of the wrong size are rejected naming the file") {
  TempDir root;
  write_fake_split(root.path(), "t10k", 2, 5);
  std::string msg = error_of("mnist", "test", root.path().string());
  CHECK(contains(msg, (root / "t10k-images-idx3-ubyte.gz").string()));
  CHECK(contains(msg, "5x5x1"));
}

TEST_CASE("catalog: missing default files without a fetch script give the command to run") {
  TempDir root, no_scripts;
  ScopedEnv data("QATC_DATA_DIR", root.path().string());
  ScopedEnv scripts("QATC_DATASETS_DIR", no_scripts.path().string());
  std::string msg = error_of("mnist", "test", "");
  CHECK(contains(msg, "bash "));
  CHECK(contains(msg, "fetch.sh " + (root / "mnist").string()));
  CHECK(contains(msg, "data.path"));
}

TEST_CASE("catalog: missing default files are fetched on first use by the fetch script") {
  TempDir root, scripts_dir;
  ScopedEnv data("QATC_DATA_DIR", root.path().string());
  ScopedEnv scripts("QATC_DATASETS_DIR", scripts_dir.path().string());
  // Stand-in for datasets/mnist/fetch.sh: copies prepared files into its argument.
  write_fake_dataset(scripts_dir / "payload");
  write_script(scripts_dir.path(), "mnist",
               "set -e\nmkdir -p \"$1\"\ncp " + (scripts_dir / "payload").string() + "/* \"$1\"/\necho fetched\n");
  check_fake(load_dataset("mnist", "test", ""), 3, "mnist/test");
  CHECK(fs::exists(root / "mnist" / "t10k-labels-idx1-ubyte"));
}

TEST_CASE("catalog: a failing fetch script is an error with its status and the command") {
  TempDir root, scripts_dir;
  ScopedEnv data("QATC_DATA_DIR", root.path().string());
  ScopedEnv scripts("QATC_DATASETS_DIR", scripts_dir.path().string());
  write_script(scripts_dir.path(), "mnist", "echo 'no network' >&2\nexit 3\n");
  std::string msg = error_of("mnist", "train", "");
  CHECK(contains(msg, "status 3"));
  CHECK(contains(msg, "bash " + (scripts_dir / "mnist" / "fetch.sh").string() + " " + (root / "mnist").string()));

  write_script(scripts_dir.path(), "mnist", "exit 0\n");  // claims success, writes nothing
  msg = error_of("mnist", "train", "");
  CHECK(contains(msg, "still not in " + (root / "mnist").string()));
}

TEST_CASE("catalog: a damaged file at the default location says how to fetch it again") {
  TempDir root, no_scripts;
  write_fake_dataset(root / "mnist");
  write_plain(root / "mnist" / "t10k-labels-idx1-ubyte", std::string("\0\0\x08\x01\0\0\0\x03\x01", 9));
  ScopedEnv data("QATC_DATA_DIR", root.path().string());
  ScopedEnv scripts("QATC_DATASETS_DIR", no_scripts.path().string());
  std::string msg = error_of("mnist", "test", "");
  CHECK(contains(msg, (root / "mnist" / "t10k-labels-idx1-ubyte").string()));
  CHECK(contains(msg, "truncated"));
  CHECK(contains(msg, "fetch again"));
}

TEST_CASE("catalog: the real Fashion-MNIST test split from the Debian package") {
  const fs::path sys = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(sys / "t10k-images-idx3-ubyte.gz") || !fs::exists(sys / "t10k-labels-idx1-ubyte.gz")) {
    MESSAGE("skipped: " << sys << " not installed (apt-get install dataset-fashion-mnist)");
    return;
  }
  TempDir empty;
  ScopedEnv data("QATC_DATA_DIR", empty.path().string());  // nothing there: the system copy is used
  ScopedEnv scripts("QATC_DATASETS_DIR", empty.path().string());
  CHECK(default_dataset_dir("fashion_mnist") == sys);
  Dataset d = load_dataset("fashion_mnist", "test", "");
  CHECK(d.n == 10000);
  CHECK(d.h == 28);
  CHECK(d.w == 28);
  CHECK(d.c == 1);
  std::array<int, 10> hist{};
  for (int32_t l : d.labels) hist[static_cast<size_t>(l)]++;
  for (int k = 0; k < 10; ++k) CHECK(hist[static_cast<size_t>(k)] == 1000);
}

TEST_CASE("catalog: the real MNIST test split when it has been fetched") {
  const char* home = std::getenv("HOME");
  const fs::path dir = fs::path(home ? home : "/nonexistent") / ".cache" / "qatc" / "mnist";
  if (!fs::exists(dir / "t10k-images-idx3-ubyte") && !fs::exists(dir / "t10k-images-idx3-ubyte.gz")) {
    MESSAGE("skipped: MNIST not fetched into " << dir << " (datasets/mnist/fetch.sh " << dir << ")");
    return;
  }
  Dataset d = load_dataset("mnist", "test", dir.string());
  CHECK(d.n == 10000);
  CHECK(d.h == 28);
  CHECK(d.w == 28);
  std::array<int, 10> hist{};
  for (int32_t l : d.labels) hist[static_cast<size_t>(l)]++;
  CHECK(hist == std::array<int, 10>{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009});
}
