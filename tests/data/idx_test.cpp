// Tests for the IDX reader: exact values from plain and gzipped files, and one clear
// qatc::Error naming the file for every kind of damaged input.
#include <doctest/doctest.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "data/idx.h"
#include "fixtures/temp_dir.h"

namespace fs = std::filesystem;
using qatc::data::Dataset;
using qatc::data::read_idx;

namespace {

// A temp folder named after this test file.
class TempDir : public qatc::testing::TempDir {
 public:
  TempDir() : qatc::testing::TempDir("qatc_idx_test") {}
};

void put_be32(std::string& s, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) s.push_back(static_cast<char>((v >> shift) & 0xff));
}

std::string idx_images(uint32_t n, uint32_t h, uint32_t w, const std::vector<uint8_t>& pixels) {
  std::string s;
  put_be32(s, 0x00000803);
  put_be32(s, n);
  put_be32(s, h);
  put_be32(s, w);
  s.append(pixels.begin(), pixels.end());
  return s;
}

std::string idx_labels(uint32_t n, const std::vector<uint8_t>& labels) {
  std::string s;
  put_be32(s, 0x00000801);
  put_be32(s, n);
  s.append(labels.begin(), labels.end());
  return s;
}

void write_plain(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

std::string gzip_bytes(const std::string& bytes) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&zs, bytes.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  zs.avail_in = static_cast<uInt>(bytes.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

void write_gz(const fs::path& p, const std::string& bytes) { write_plain(p, gzip_bytes(bytes)); }

// A small valid set: 3 images of 4x5 and labels 0, 9, 4.
std::vector<uint8_t> sample_pixels() {
  std::vector<uint8_t> px(3 * 4 * 5);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>((i * 37 + 11) % 256);
  return px;
}
const std::vector<uint8_t> kLabels = {0, 9, 4};

void check_sample(const Dataset& d) {
  CHECK(d.name == "tiny");
  CHECK(d.n == 3);
  CHECK(d.h == 4);
  CHECK(d.w == 5);
  CHECK(d.c == 1);
  CHECK(d.classes == 10);
  CHECK(d.images == sample_pixels());
  CHECK(d.labels == std::vector<int32_t>{0, 9, 4});
}

// Runs read_idx and returns the qatc::Error message; fails the test if it does not throw one.
std::string error_of(const fs::path& images, const fs::path& labels, int32_t classes = 10) {
  try {
    read_idx(images, labels, "tiny", classes);
  } catch (const qatc::Error& e) {
    return e.what();
  }
  FAIL("expected qatc::Error for " << images << " / " << labels);
  return {};
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("idx: plain files load with exact pixels and labels") {
  TempDir dir;
  write_plain(dir / "img", idx_images(3, 4, 5, sample_pixels()));
  write_plain(dir / "lab", idx_labels(3, kLabels));
  check_sample(read_idx(dir / "img", dir / "lab", "tiny", 10));
}

TEST_CASE("idx: gzipped and mixed gzipped and plain files load the same values") {
  TempDir dir;
  write_gz(dir / "img.gz", idx_images(3, 4, 5, sample_pixels()));
  write_gz(dir / "lab.gz", idx_labels(3, kLabels));
  write_plain(dir / "lab", idx_labels(3, kLabels));
  check_sample(read_idx(dir / "img.gz", dir / "lab.gz", "tiny", 10));
  check_sample(read_idx(dir / "img.gz", dir / "lab", "tiny", 10));
}

TEST_CASE("idx: a file larger than the gzip and read buffers loads exactly") {
  TempDir dir;
  const uint32_t n = 3000, h = 28, w = 28;  // 2.35 MB: several growth steps and zlib buffers
  std::vector<uint8_t> px(size_t{n} * h * w);
  qatc::Rng rng(7);
  for (auto& p : px) p = static_cast<uint8_t>(rng.next() >> 56);
  std::vector<uint8_t> lab(n);
  for (auto& l : lab) l = static_cast<uint8_t>(rng.below(10));
  write_gz(dir / "img.gz", idx_images(n, h, w, px));
  write_plain(dir / "lab", idx_labels(n, lab));
  Dataset d = read_idx(dir / "img.gz", dir / "lab", "big", 10);
  CHECK(d.n == n);
  CHECK(d.images == px);
  REQUIRE(d.labels.size() == lab.size());
  for (size_t i = 0; i < lab.size(); ++i) REQUIRE(d.labels[i] == lab[i]);
}

TEST_CASE("idx: wrong magic is an error naming the file") {
  TempDir dir;
  write_plain(dir / "lab", idx_labels(3, kLabels));
  write_plain(dir / "html", "<!DOCTYPE html><html>not data</html>");
  std::string msg = error_of(dir / "html", dir / "lab");
  CHECK(contains(msg, (dir / "html").string()));
  CHECK(contains(msg, "not an IDX file"));

  std::string img = idx_images(3, 4, 5, sample_pixels());
  img[2] = 0x0d;  // IDX float elements
  write_plain(dir / "float", img);
  msg = error_of(dir / "float", dir / "lab");
  CHECK(contains(msg, (dir / "float").string()));
  CHECK(contains(msg, "type 0x0d"));
}

TEST_CASE("idx: swapped images and labels paths are reported as such") {
  TempDir dir;
  write_plain(dir / "img", idx_images(3, 4, 5, sample_pixels()));
  write_plain(dir / "lab", idx_labels(3, kLabels));
  std::string msg = error_of(dir / "lab", dir / "img");
  CHECK(contains(msg, (dir / "lab").string()));
  CHECK(contains(msg, "swapped"));
}

TEST_CASE("idx: truncated images file is an error with both byte counts") {
  TempDir dir;
  std::string img = idx_images(3, 4, 5, sample_pixels());
  write_plain(dir / "img", img.substr(0, img.size() - 7));
  write_plain(dir / "lab", idx_labels(3, kLabels));
  std::string msg = error_of(dir / "img", dir / "lab");
  CHECK(contains(msg, (dir / "img").string()));
  CHECK(contains(msg, "truncated"));
  CHECK(contains(msg, "expected 60 bytes of pixels"));
  CHECK(contains(msg, "got 53"));

  write_plain(dir / "hdr", img.substr(0, 10));  // ends inside the dims
  msg = error_of(dir / "hdr", dir / "lab");
  CHECK(contains(msg, (dir / "hdr").string()));
  CHECK(contains(msg, "truncated IDX header"));

  write_plain(dir / "empty", "");
  msg = error_of(dir / "empty", dir / "lab");
  CHECK(contains(msg, (dir / "empty").string()));
  CHECK(contains(msg, "too short"));
}

TEST_CASE("idx: a gzip file cut short is an error naming the file") {
  TempDir dir;
  write_plain(dir / "lab", idx_labels(3, kLabels));
  std::string gz = gzip_bytes(idx_images(3, 4, 5, sample_pixels()));
  // Cut inside the deflate data, and cut only the 8-byte gzip trailer (data complete, CRC gone).
  for (size_t cut : {gz.size() / 2, gz.size() - 8}) {
    CAPTURE(cut);
    write_plain(dir / "img.gz", gz.substr(0, cut));
    std::string msg = error_of(dir / "img.gz", dir / "lab");
    CHECK(contains(msg, (dir / "img.gz").string()));
    CHECK(contains(msg, "truncated"));
  }
}

TEST_CASE("idx: truncated labels file is an error naming the file") {
  TempDir dir;
  write_plain(dir / "img", idx_images(3, 4, 5, sample_pixels()));
  write_plain(dir / "lab", idx_labels(3, {0, 9}));
  std::string msg = error_of(dir / "img", dir / "lab");
  CHECK(contains(msg, (dir / "lab").string()));
  CHECK(contains(msg, "expected 3 bytes of labels"));
  CHECK(contains(msg, "got 2"));
}

TEST_CASE("idx: different counts in the images and labels files are an error naming both") {
  TempDir dir;
  write_plain(dir / "img", idx_images(3, 4, 5, sample_pixels()));
  write_plain(dir / "lab", idx_labels(2, {0, 9}));
  std::string msg = error_of(dir / "img", dir / "lab");
  CHECK(contains(msg, (dir / "img").string()));
  CHECK(contains(msg, (dir / "lab").string()));
  CHECK(contains(msg, "3 images"));
  CHECK(contains(msg, "2 labels"));
}

TEST_CASE("idx: a label not below the class count is an error with its index") {
  TempDir dir;
  write_plain(dir / "img", idx_images(3, 4, 5, sample_pixels()));
  write_plain(dir / "lab", idx_labels(3, {0, 10, 4}));
  std::string msg = error_of(dir / "img", dir / "lab");
  CHECK(contains(msg, (dir / "lab").string()));
  CHECK(contains(msg, "label 10 at index 1"));
  // Same file is fine with more classes.
  CHECK(read_idx(dir / "img", dir / "lab", "tiny", 11).labels[1] == 10);
}

TEST_CASE("idx: a zero dimension is an error naming the file") {
  TempDir dir;
  write_plain(dir / "lab", idx_labels(3, kLabels));
  write_plain(dir / "img", idx_images(3, 0, 5, {}));
  std::string msg = error_of(dir / "img", dir / "lab");
  CHECK(contains(msg, (dir / "img").string()));
  CHECK(contains(msg, "zero dimension"));

  write_plain(dir / "img0", idx_images(0, 4, 5, {}));
  write_plain(dir / "lab0", idx_labels(0, {}));
  msg = error_of(dir / "img0", dir / "lab0");
  CHECK(contains(msg, (dir / "img0").string()));
  CHECK(contains(msg, "zero dimension"));
}

TEST_CASE("idx: trailing bytes after the declared data are an error naming the file") {
  TempDir dir;
  std::vector<uint8_t> px = sample_pixels();
  px.push_back(1);
  px.push_back(2);
  write_plain(dir / "img", idx_images(3, 4, 5, px));
  write_plain(dir / "lab", idx_labels(3, kLabels));
  std::string msg = error_of(dir / "img", dir / "lab");
  CHECK(contains(msg, (dir / "img").string()));
  CHECK(contains(msg, "2 unexpected bytes"));

  write_plain(dir / "img_ok", idx_images(3, 4, 5, sample_pixels()));
  write_gz(dir / "lab.gz", idx_labels(3, {0, 9, 4, 4}));
  msg = error_of(dir / "img_ok", dir / "lab.gz");
  CHECK(contains(msg, (dir / "lab.gz").string()));
  CHECK(contains(msg, "1 unexpected bytes"));
}

TEST_CASE("idx: a huge declared size with a tiny file fails fast without allocating it") {
  TempDir dir;
  write_plain(dir / "lab", idx_labels(3, kLabels));
  // 60M images of 100x100: 600 GB declared (under the 1 TiB sanity cap), 60 bytes present.
  write_plain(dir / "img", idx_images(60'000'000, 100, 100, sample_pixels()));
  write_plain(dir / "lab_big", idx_labels(60'000'000, kLabels));
  std::string msg = error_of(dir / "img", dir / "lab_big");
  CHECK(contains(msg, (dir / "img").string()));
  CHECK(contains(msg, "truncated"));
  CHECK(contains(msg, "expected 600000000000 bytes"));

  // Past the cap: refused from the header alone.
  write_plain(dir / "img_max", idx_images(0xffffffffu, 0xffffffffu, 0xffffffffu, {}));
  write_plain(dir / "lab_max", idx_labels(0xffffffffu, {}));
  msg = error_of(dir / "img_max", dir / "lab_max");
  CHECK(contains(msg, (dir / "img_max").string()));
  CHECK(contains(msg, "more than 1 TiB"));

  rusage ru{};
  REQUIRE(getrusage(RUSAGE_SELF, &ru) == 0);
  CHECK(ru.ru_maxrss < 1024 * 1024);  // KiB: the peak stayed under 1 GiB
}

TEST_CASE("idx: missing file and folder instead of file are errors naming the path") {
  TempDir dir;
  write_plain(dir / "lab", idx_labels(3, kLabels));
  std::string msg = error_of(dir / "nope-images", dir / "lab");
  CHECK(contains(msg, (dir / "nope-images").string()));
  CHECK(contains(msg, "not found"));

  fs::create_directories(dir / "folder");
  msg = error_of(dir / "folder", dir / "lab");
  CHECK(contains(msg, (dir / "folder").string()));
  CHECK(contains(msg, "is a folder"));
}

TEST_CASE("idx: corrupted gzip data is an error naming the file") {
  TempDir dir;
  write_plain(dir / "lab", idx_labels(3, kLabels));
  std::string gz = gzip_bytes(idx_images(3, 4, 5, sample_pixels()));
  for (size_t i = 12; i < gz.size(); ++i) gz[i] = static_cast<char>(gz[i] ^ 0x5a);
  write_plain(dir / "img.gz", gz);
  std::string msg = error_of(dir / "img.gz", dir / "lab");
  CHECK(contains(msg, (dir / "img.gz").string()));
}

TEST_CASE("idx: the fix hint given by the caller ends the message") {
  TempDir dir;
  write_plain(dir / "img", idx_images(3, 4, 5, sample_pixels()));
  write_plain(dir / "lab", idx_labels(3, {0, 9}));
  try {
    read_idx(dir / "img", dir / "lab", "tiny", 10, "delete it and fetch again: fetch.sh DIR");
    FAIL("expected qatc::Error");
  } catch (const qatc::Error& e) {
    std::string msg = e.what();
    CHECK(msg.find('\n') == std::string::npos);
    CHECK(contains(msg, "; delete it and fetch again: fetch.sh DIR"));
  }
}

TEST_CASE("idx: random damage to valid files only ever raises qatc::Error") {
  TempDir dir;
  const std::string img = idx_images(3, 4, 5, sample_pixels());
  const std::string lab = idx_labels(3, kLabels);
  const std::string img_gz = gzip_bytes(img);
  write_plain(dir / "lab", lab);
  qatc::Rng rng(2024);
  int loaded = 0, rejected = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    const bool gz = iter % 2 == 1;
    std::string bytes = gz ? img_gz : img;
    switch (rng.below(3)) {
      case 0:  // flip a few bytes (header bytes hit often: the file is small)
        for (uint32_t k = 0, m = 1 + rng.below(4); k < m; ++k) {
          bytes[rng.below(static_cast<uint32_t>(bytes.size()))] = static_cast<char>(rng.next() >> 56);
        }
        break;
      case 1:  // cut
        bytes.resize(rng.below(static_cast<uint32_t>(bytes.size())));
        break;
      default:  // append garbage
        for (uint32_t k = 0, m = 1 + rng.below(16); k < m; ++k) bytes.push_back(static_cast<char>(rng.next() >> 56));
        break;
    }
    // A new name each time: rewriting one file in place makes ext4 flush it on every close.
    const fs::path p = dir / ("fuzz" + std::to_string(iter) + (gz ? ".gz" : ""));
    write_plain(p, bytes);
    try {
      Dataset d = read_idx(p, dir / "lab", "fuzz", 10);
      REQUIRE(d.images.size() == static_cast<size_t>(d.n * d.h * d.w * d.c));
      ++loaded;
    } catch (const qatc::Error& e) {
      INFO(std::string(e.what()));
      REQUIRE(contains(e.what(), p.string()));
      ++rejected;
    }
    fs::remove(p);
  }
  CHECK(rejected > 0);
  MESSAGE("fuzz: " << loaded << " damaged files still valid (pixel bytes, gzip header fields, junk after the gzip stream), " << rejected << " rejected");
}
