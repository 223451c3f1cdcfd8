// Tests for the image folder path: indexing (class folders, flat folder + labels file), one
// clear qatc::Error per bad input, the preprocessing presets against hand-computed values,
// reproducible augmentation, the bad-image policy and the batch prefetcher.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

// stb_image_write's implementation lives here and only here (qatc_lib compiles stb_image, not
// the writer; see lib/data/stb_image_impl.cpp).
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

#include "core/error.h"
#include "core/rng.h"
#include "core/threads.h"
#include "data/image_folder.h"
#include "data/image_source.h"
#include "data/preprocess.h"
#include "fixtures/temp_dir.h"

namespace fs = std::filesystem;
using namespace qatc::data;

namespace {

// A temp folder named after this test file.
class TempDir : public qatc::testing::TempDir {
 public:
  TempDir() : qatc::testing::TempDir("qatc_image_test") {}
};

// Restores qatc's thread count at scope exit.
class ThreadsGuard {
 public:
  ThreadsGuard() : n_(qatc::num_threads()) {}
  ~ThreadsGuard() { qatc::set_num_threads(n_); }

 private:
  int n_;
};

void write_text(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary);
  out << text;
  REQUIRE(out.good());
}

// A smooth RGB test image whose content depends on `seed`.
std::vector<uint8_t> smooth_rgb(int w, int h, int seed) {
  std::vector<uint8_t> px(static_cast<size_t>(w * h * 3));
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      for (int c = 0; c < 3; ++c) {
        double v = 128 + 100 * std::sin(0.21 * x * (c + 1) + 0.13 * y + seed) * std::cos(0.17 * y - seed * c);
        px[static_cast<size_t>((y * w + x) * 3 + c)] = static_cast<uint8_t>(std::lround(std::clamp(v, 0.0, 255.0)));
      }
    }
  }
  return px;
}

void write_jpg(const fs::path& p, int w, int h, int seed) {
  fs::create_directories(p.parent_path());
  const auto px = smooth_rgb(w, h, seed);
  REQUIRE(stbi_write_jpg(p.c_str(), w, h, 3, px.data(), 95) != 0);
}

void write_png(const fs::path& p, int w, int h, int comp, const std::vector<uint8_t>& px) {
  fs::create_directories(p.parent_path());
  REQUIRE(stbi_write_png(p.c_str(), w, h, comp, px.data(), w * comp) != 0);
}

void write_png(const fs::path& p, int w, int h, int seed) { write_png(p, w, h, 3, smooth_rgb(w, h, seed)); }

// root/train/{n02,n01,n03} (made in that order) with 2, 3 and 1 images of mixed types and
// extension cases, plus files the index must ignore.
void make_train(const fs::path& root) {
  write_jpg(root / "train/n02/b.JPEG", 40, 30, 1);
  write_png(root / "train/n02/a.png", 31, 23, 2);
  write_jpg(root / "train/n01/z.jpg", 36, 48, 3);
  write_jpg(root / "train/n01/c.Jpeg", 50, 20, 4);
  write_png(root / "train/n01/m.PNG", 17, 29, 5);
  write_jpg(root / "train/n03/q.JPEG", 64, 48, 6);
  write_text(root / "train/n01/readme.txt", "not an image\n");
  write_text(root / "train/n01/._z.jpg", "macOS AppleDouble file\n");
  fs::create_directories(root / "train/.ipynb_checkpoints");
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const qatc::Error& e) {
    return e.what();
  }
  FAIL("expected qatc::Error");
  return {};
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A user error: one line naming `where`.
void check_error(const std::string& msg, const std::string& where, const std::string& what) {
  INFO(msg);
  CHECK(contains(msg, where));
  CHECK(contains(msg, what));
  CHECK(msg.find('\n') == std::string::npos);
}

ImageFolderOptions split(const std::string& dir, const std::string& labels = {}, bool background = false) {
  ImageFolderOptions o;
  o.split_dir = dir;
  o.labels_file = labels;
  o.background_class = background;
  return o;
}

std::vector<int32_t> iota(int32_t n) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = i;
  return v;
}

// A constant-colour h x w image.
std::vector<uint8_t> constant_rgb(int64_t h, int64_t w, uint8_t r, uint8_t g, uint8_t b) {
  std::vector<uint8_t> px(static_cast<size_t>(h * w * 3));
  for (size_t i = 0; i < px.size(); i += 3) {
    px[i] = r;
    px[i + 1] = g;
    px[i + 2] = b;
  }
  return px;
}

// The exact float32 value each preset gives a constant pixel value v of channel c (RGB index),
// written out as the reference libraries compute it.
float tf_value(uint8_t v) { return (static_cast<float>(v) * static_cast<float>(1.0 / 255.0) - 0.5f) * 2.0f; }
float torch_value(uint8_t v, int c) {
  const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
  return (static_cast<float>(v) / 255.0f - mean[c]) / std[c];
}
float caffe_value(uint8_t v, int c) {  // c: RGB channel; it lands at BGR position 2 - c
  const float mean_rgb[3] = {123.68f, 116.779f, 103.939f};
  return static_cast<float>(v) - mean_rgb[c];
}

}  // namespace

TEST_CASE("image folder: classes are the sorted class folders of train, files sorted per class") {
  TempDir dir;
  make_train(dir.path());
  const ImageIndex idx = index_image_folder(dir.path(), split("train"));
  CHECK(idx.class_names == std::vector<std::string>{"n01", "n02", "n03"});
  CHECK(idx.classes == 3);
  CHECK(idx.name == dir.path().filename().string() + "/train");
  const fs::path t = dir / "train";
  CHECK(idx.files == std::vector<std::string>{(t / "n01/c.Jpeg").string(), (t / "n01/m.PNG").string(),
                                              (t / "n01/z.jpg").string(), (t / "n02/a.png").string(),
                                              (t / "n02/b.JPEG").string(), (t / "n03/q.JPEG").string()});
  CHECK(idx.labels == std::vector<int32_t>{0, 0, 0, 1, 1, 2});

  SUBCASE("background class shifts every label by one") {
    const ImageIndex bg = index_image_folder(dir.path(), split("train", "", true));
    CHECK(bg.classes == 4);
    CHECK(bg.class_names == std::vector<std::string>{"background", "n01", "n02", "n03"});
    CHECK(bg.labels == std::vector<int32_t>{1, 1, 1, 2, 2, 3});
    CHECK(bg.files == idx.files);
  }
  SUBCASE("val in class folders takes the class indices of train") {
    write_jpg(dir / "val/n03/v1.JPEG", 20, 20, 7);
    write_jpg(dir / "val/n02/v2.JPEG", 20, 20, 8);
    const ImageIndex val = index_image_folder(dir.path(), split("val"));
    CHECK(val.classes == 3);
    CHECK(val.labels == std::vector<int32_t>{1, 2});
    CHECK(val.name == dir.path().filename().string() + "/val");
  }
  SUBCASE("without train/, the split's own class folders are the classes") {
    TempDir other;
    write_jpg(other / "val/n09/a.JPEG", 20, 20, 1);
    write_jpg(other / "val/n05/b.JPEG", 20, 20, 2);
    const ImageIndex val = index_image_folder(other.path(), split("val"));
    CHECK(val.class_names == std::vector<std::string>{"n05", "n09"});
    CHECK(val.labels == std::vector<int32_t>{0, 1});
  }
}

TEST_CASE("image folder: a flat split with a labels file") {
  TempDir dir;
  make_train(dir.path());
  write_jpg(dir / "val/ILSVRC2012_val_00000002.JPEG", 30, 20, 1);
  write_jpg(dir / "val/ILSVRC2012_val_00000001.JPEG", 20, 30, 2);
  write_png(dir / "val/ILSVRC2012_val_00000003.png", 25, 25, 3);
  write_jpg(dir / "val/unlisted.JPEG", 20, 20, 4);  // not in the labels file: unused, a warning
  write_text(dir / "val.txt",
             "ILSVRC2012_val_00000002.JPEG 2\r\n"
             "# a comment\n"
             "\n"
             "ILSVRC2012_val_00000001.JPEG\t0\n"
             "ILSVRC2012_val_00000003.png n02\n");
  const ImageIndex val = index_image_folder(dir.path(), split("val", "val.txt"));
  const fs::path v = dir / "val";
  CHECK(val.files == std::vector<std::string>{(v / "ILSVRC2012_val_00000001.JPEG").string(),
                                              (v / "ILSVRC2012_val_00000002.JPEG").string(),
                                              (v / "ILSVRC2012_val_00000003.png").string()});
  CHECK(val.labels == std::vector<int32_t>{0, 2, 1});
  CHECK(val.classes == 3);

  const ImageIndex bg = index_image_folder(dir.path(), split("val", (dir / "val.txt").string(), true));
  CHECK(bg.labels == std::vector<int32_t>{1, 3, 2});
  CHECK(bg.classes == 4);

  SUBCASE("without train/, the class count is the largest index + 1") {
    fs::remove_all(dir / "train");
    write_text(dir / "val.txt", "ILSVRC2012_val_00000001.JPEG 4\nILSVRC2012_val_00000002.JPEG 1\n");
    const ImageIndex only = index_image_folder(dir.path(), split("val", "val.txt"));
    CHECK(only.classes == 5);
    CHECK(only.class_names.size() == 5);
    CHECK(only.labels == std::vector<int32_t>{4, 1});
  }
}

TEST_CASE("image folder: every bad input is one qatc::Error line naming the file or folder") {
  TempDir dir;
  make_train(dir.path());
  const std::string root = dir.path().string();
  const std::string val_txt = (dir / "val.txt").string();
  write_jpg(dir / "val/a.JPEG", 20, 20, 1);
  write_jpg(dir / "val/b.JPEG", 20, 20, 2);

  check_error(error_of([&] { index_image_folder(dir / "nope", split("train")); }), (dir / "nope").string(),
              "image folder not found");
  check_error(error_of([&] { index_image_folder(dir / "val.txt.missing", split("train")); }),
              (dir / "val.txt.missing").string(), "not found");
  check_error(error_of([&] { index_image_folder(dir.path(), split("test")); }), (dir / "test").string(),
              "split folder not found");
  check_error(error_of([&] { index_image_folder(dir.path(), split("val")); }), (dir / "val").string(),
              "no class folders");
  check_error(error_of([&] { index_image_folder(dir.path(), split("val", "labels.txt")); }),
              (dir / "labels.txt").string(), "labels file not found");

  write_text(dir / "val.txt", "a.JPEG 0\nb.JPEG\n");
  check_error(error_of([&] { index_image_folder(dir.path(), split("val", "val.txt")); }), val_txt + ":2:",
              "expected \"<file> <label>\"");
  write_text(dir / "val.txt", "a.JPEG 0 extra\n");
  check_error(error_of([&] { index_image_folder(dir.path(), split("val", "val.txt")); }), val_txt + ":1:",
              "expected");
  write_text(dir / "val.txt", "a.JPEG 0\nb.JPEG n07\n");
  check_error(error_of([&] { index_image_folder(dir.path(), split("val", "val.txt")); }), val_txt + ":2:",
              "neither a class index nor a class folder");
  write_text(dir / "val.txt", "a.JPEG 1x\n");
  check_error(error_of([&] { index_image_folder(dir.path(), split("val", "val.txt")); }), val_txt + ":1:",
              "neither a class index");
  write_text(dir / "val.txt", "a.JPEG 0\n\nc.JPEG 1\n");
  check_error(error_of([&] { index_image_folder(dir.path(), split("val", "val.txt")); }), val_txt + ":3:",
              "image " + (dir / "val/c.JPEG").string() + " not found");
  write_text(dir / "val.txt", "a.JPEG 3\n");
  check_error(error_of([&] { index_image_folder(dir.path(), split("val", "val.txt")); }), val_txt + ":1:",
              "class index 3 is out of range for the 3 class folders");
  write_text(dir / "val.txt", "a.JPEG -1\n");
  check_error(error_of([&] { index_image_folder(dir.path(), split("val", "val.txt")); }), val_txt + ":1:",
              "out of range");
  write_text(dir / "val.txt", "a.JPEG 99999999999999999999\n");
  check_error(error_of([&] { index_image_folder(dir.path(), split("val", "val.txt")); }), val_txt + ":1:",
              "out of range");
  write_text(dir / "val.txt", "a.JPEG 0\nb.JPEG 1\na.JPEG 2\n");
  check_error(error_of([&] { index_image_folder(dir.path(), split("val", "val.txt")); }), val_txt + ":3:",
              "listed twice (first on line 1)");
  write_text(dir / "val.txt", "# nothing\n");
  check_error(error_of([&] { index_image_folder(dir.path(), split("val", "val.txt")); }), val_txt, "lists no images");
  check_error(error_of([&] { index_image_folder(dir.path(), split("val", ".")); }), root, "is a folder");

  // A class folder of val that train lacks, and a split whose class folders hold no images.
  write_jpg(dir / "val2/n07/a.JPEG", 20, 20, 1);
  check_error(error_of([&] { index_image_folder(dir.path(), split("val2")); }), (dir / "val2/n07").string(),
              "class folder not in");
  fs::create_directories(dir / "val3/n01");
  write_text(dir / "val3/n01/notes.txt", "x");
  check_error(error_of([&] { index_image_folder(dir.path(), split("val3")); }), (dir / "val3").string(),
              "no images");
  fs::create_directories(dir / "val4");
  check_error(error_of([&] { index_image_folder(dir.path(), split("val4")); }), (dir / "val4").string(),
              "no class folders and no images");

  // An empty train folder.
  TempDir empty;
  fs::create_directories(empty / "train");
  check_error(error_of([&] { index_image_folder(empty.path(), split("train")); }), (empty / "train").string(),
              "no class folders");
  write_text(empty / "file", "x");
  check_error(error_of([&] { index_image_folder(empty / "file", split("train")); }), (empty / "file").string(),
              "is a file");

  check_error(error_of([] { parse_preprocess("inception", "data.preprocess"); }), "data.preprocess", "inception");
  check_error(error_of([] { parse_on_bad_image("ignore", "data.on_bad_image"); }), "data.on_bad_image", "ignore");
}

TEST_CASE("decode: JPEG, PNG, grayscale and RGBA all give 3 channels, non-images are reported") {
  TempDir dir;
  std::vector<uint8_t> gray(6 * 4), rgba(5 * 3 * 4);
  for (size_t i = 0; i < gray.size(); ++i) gray[i] = static_cast<uint8_t>(i * 10);
  for (size_t i = 0; i < rgba.size(); ++i) rgba[i] = static_cast<uint8_t>(i * 3 + 1);
  write_png(dir / "g.png", 6, 4, 1, gray);
  write_png(dir / "a.png", 5, 3, 4, rgba);
  write_jpg(dir / "c.jpg", 40, 30, 1);

  DecodedImage img;
  std::string why;
  REQUIRE(decode_image_file((dir / "g.png").string(), &img, &why));
  CHECK(img.h == 4);
  CHECK(img.w == 6);
  REQUIRE(img.rgb.size() == 6 * 4 * 3);
  for (size_t i = 0; i < gray.size(); ++i) {
    CHECK(img.rgb[i * 3] == gray[i]);
    CHECK(img.rgb[i * 3 + 1] == gray[i]);
    CHECK(img.rgb[i * 3 + 2] == gray[i]);
  }
  REQUIRE(decode_image_file((dir / "a.png").string(), &img, &why));
  REQUIRE(img.rgb.size() == 5 * 3 * 3);
  for (size_t i = 0; i < 15; ++i) {
    for (size_t c = 0; c < 3; ++c) CHECK(img.rgb[i * 3 + c] == rgba[i * 4 + c]);
  }
  REQUIRE(decode_image_file((dir / "c.jpg").string(), &img, &why));
  CHECK(img.h == 30);
  CHECK(img.w == 40);

  write_text(dir / "t.JPEG", "hello, not a JPEG\n");
  CHECK_FALSE(decode_image_file((dir / "t.JPEG").string(), &img, &why));
  CHECK(contains(why, "not a JPEG or PNG image"));
  write_text(dir / "e.png", "");
  CHECK_FALSE(decode_image_file((dir / "e.png").string(), &img, &why));
  CHECK(why == "empty file");
  // A JPEG cut after its header: stb_image decodes what is there or rejects it, never crashes.
  {
    std::ifstream in(dir / "c.jpg", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    write_text(dir / "cut.jpg", bytes.substr(0, 200));
    why.clear();
    const bool ok = decode_image_file((dir / "cut.jpg").string(), &img, &why);
    CHECK((ok || !why.empty()));
    // A Huffman table (DHT: FF C4, length, class/id, 16 code counts) declaring 16 * 32 = 512
    // codes: stb_image 2.27 would write past its tables; the guard rejects the file first.
    const size_t dht = bytes.find("\xFF\xC4");
    REQUIRE(dht != std::string::npos);
    for (size_t k = 0; k < 16; ++k) bytes[dht + 5 + k] = '\x20';
    write_text(dir / "dht.jpg", bytes);
    CHECK_FALSE(decode_image_file((dir / "dht.jpg").string(), &img, &why));
    CHECK(contains(why, "Huffman table declares 512 codes"));
  }
  // A FIFO under an image name is reported, not waited on.
  REQUIRE(::mkfifo((dir / "fifo.jpg").c_str(), 0600) == 0);
  CHECK_FALSE(decode_image_file((dir / "fifo.jpg").string(), &img, &why));
  CHECK(why == "not a regular file");
  check_error(error_of([&] { decode_image_file((dir / "missing.jpg").string(), &img, &why); }),
              (dir / "missing.jpg").string(), "cannot open the image");
}

TEST_CASE("preprocess: geometry helpers match TF and torchvision") {
  const CropBox c = central_crop_tf(375, 500);  // int((375 - 328.125) / 2) = 23, int(62.5 / 2) = 31
  CHECK(c.top == 23);
  CHECK(c.left == 31);
  CHECK(c.height == 329);
  CHECK(c.width == 438);
  CHECK(resize_shorter_side(224, 224) == 256);
  CHECK(resize_shorter_side(160, 160) == 183);  // 182.86
  CHECK(resize_shorter_side(128, 128) == 146);  // 146.29
  CHECK(resize_shorter_side(96, 128) == 146);   // the larger side decides, so the crop fits
  int64_t nh = 0, nw = 0;
  shorter_side_size(375, 500, 256, &nh, &nw);  // torchvision Resize(256): 256 x int(341.33)
  CHECK(nh == 256);
  CHECK(nw == 341);
  shorter_side_size(500, 333, 256, &nh, &nw);
  CHECK(nh == 384);  // int(256 * 500 / 333) = int(384.38)
  CHECK(nw == 256);

  // Random-resized-crop boxes stay inside the image; a 1 x 1000 strip takes the central fallback.
  for (uint64_t s = 0; s < 200; ++s) {
    qatc::Rng rng(s);
    const CropBox b = random_resized_crop(375, 500, rng);
    CHECK(b.height > 0);
    CHECK(b.width > 0);
    CHECK(b.top + b.height <= 375);
    CHECK(b.left + b.width <= 500);
    const double area = static_cast<double>(b.height * b.width) / (375.0 * 500.0);
    CHECK(area >= 0.07);
  }
  qatc::Rng rng(3);
  const CropBox strip = random_resized_crop(1, 1000, rng);
  CHECK(strip.height == 1);
  CHECK(strip.width == 1);  // round(1 * 4/3)
  CHECK(strip.top == 0);
  CHECK(strip.left == 499);
  const CropBox tall = random_resized_crop(1000, 2, rng);
  CHECK(tall.width == 2);
  CHECK(tall.height == 3);  // round(2 / (3/4)) = round(2.67)
  CHECK(tall.top == 498);
}

TEST_CASE("preprocess: a constant image gives exactly each preset's value, eval and augmented") {
  const uint8_t rgb[3] = {10, 128, 250};
  const auto img = constant_rgb(37, 53, rgb[0], rgb[1], rgb[2]);
  const int64_t oh = 8, ow = 6;
  std::vector<float> out(static_cast<size_t>(oh * ow * 3));
  for (bool augment : {false, true}) {
    for (Preprocess p : {Preprocess::tf, Preprocess::caffe, Preprocess::torch}) {
      INFO(preprocess_name(p) << (augment ? " augmented" : " eval"));
      qatc::Rng rng(11);
      if (augment) {
        augment_image(img.data(), 37, 53, p, oh, ow, rng, out.data());
      } else {
        preprocess_image(img.data(), 37, 53, p, oh, ow, out.data());
      }
      for (int64_t k = 0; k < oh * ow; ++k) {
        for (int c = 0; c < 3; ++c) {
          float want = 0, got = 0;
          switch (p) {
            case Preprocess::tf:
              want = tf_value(rgb[c]);
              got = out[static_cast<size_t>(k * 3 + c)];
              break;
            case Preprocess::torch:
              want = torch_value(rgb[c], c);
              got = out[static_cast<size_t>(k * 3 + c)];
              break;
            case Preprocess::caffe:
              want = caffe_value(rgb[c], c);
              got = out[static_cast<size_t>(k * 3 + (2 - c))];  // BGR
              break;
          }
          REQUIRE(got == want);
        }
      }
    }
  }
  // Spot values, by hand: tf 10 -> 10/127.5 - 1; torch 128 -> (128/255 - 0.456) / 0.224; caffe B = 250 - 103.939.
  CHECK(tf_value(10) == doctest::Approx(10.0 / 127.5 - 1.0).epsilon(1e-6));
  CHECK(torch_value(128, 1) == doctest::Approx((128.0 / 255.0 - 0.456) / 0.224).epsilon(1e-6));
  CHECK(caffe_value(250, 2) == doctest::Approx(146.061).epsilon(1e-6));
}

TEST_CASE("preprocess: tf bilinear resize uses half-pixel centres (2x2 -> 4x4)") {
  // Channel c of pixel (r, k) is p[r][k] + c. tf's central crop of 2x2 keeps everything
  // (int(0.125) = 0). Half-pixel centres from 2 to 4 samples read source coordinates
  // -0.25, 0.25, 0.75, 1.25, i.e. weights on the second pixel of 0, 0.25, 0.75, 1 (clamped at the edges).
  const double p[2][2] = {{0, 100}, {200, 40}};
  std::vector<uint8_t> img(2 * 2 * 3);
  for (int r = 0; r < 2; ++r)
    for (int k = 0; k < 2; ++k)
      for (int c = 0; c < 3; ++c) img[static_cast<size_t>((r * 2 + k) * 3 + c)] = static_cast<uint8_t>(p[r][k] + c);
  std::vector<float> out(4 * 4 * 3);
  preprocess_image(img.data(), 2, 2, Preprocess::tf, 4, 4, out.data());
  const double wgt[4] = {0, 0.25, 0.75, 1};
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) {
      for (int c = 0; c < 3; ++c) {
        const double wy = wgt[i], wx = wgt[j];
        const double v = (1 - wy) * (1 - wx) * (p[0][0] + c) + (1 - wy) * wx * (p[0][1] + c) +
                         wy * (1 - wx) * (p[1][0] + c) + wy * wx * (p[1][1] + c);
        CHECK(out[static_cast<size_t>((i * 4 + j) * 3 + c)] == doctest::Approx(v / 127.5 - 1).epsilon(1e-6));
      }
    }
  }
  // Row 0, red channel, by hand: 0, 25, 75, 100 -> x / 127.5 - 1.
  CHECK(out[0] == doctest::Approx(-1.0));
  CHECK(out[3] == doctest::Approx(25 / 127.5 - 1));
  CHECK(out[6] == doctest::Approx(75 / 127.5 - 1));
  CHECK(out[9] == doctest::Approx(100 / 127.5 - 1));
}

TEST_CASE("preprocess: caffe and torch resize the shorter side, centre crop, then normalize") {
  // 2x2 output: S = round(2 * 256 / 224) = 2. A 2x2 image is then kept as is: caffe gives
  // BGR minus the mean exactly.
  const uint8_t px[12] = {1, 2, 3, 40, 50, 60, 70, 80, 90, 200, 210, 220};
  std::vector<float> out(12);
  preprocess_image(px, 2, 2, Preprocess::caffe, 2, 2, out.data());
  for (int k = 0; k < 4; ++k) {
    for (int c = 0; c < 3; ++c) CHECK(out[static_cast<size_t>(k * 3 + 2 - c)] == caffe_value(px[k * 3 + c], c));
  }
  // A 4 x 8 image with pixel (r, k) = 10 r + k (+ c per channel): shorter side 4 -> 2 gives
  // 2 x 4 (scale 2: each output averages a 2x2 block), the centre crop 2 x 2 starts at column
  // round((4 - 2) / 2) = 1, i.e. source columns 2..5.
  std::vector<uint8_t> img(4 * 8 * 3);
  for (int r = 0; r < 4; ++r)
    for (int k = 0; k < 8; ++k)
      for (int c = 0; c < 3; ++c) img[static_cast<size_t>((r * 8 + k) * 3 + c)] = static_cast<uint8_t>(10 * r + k + c);
  preprocess_image(img.data(), 4, 8, Preprocess::torch, 2, 2, out.data());
  const double block[2][2] = {{7.5, 9.5}, {27.5, 29.5}};  // (2+3+12+13)/4, (4+5+14+15)/4, ...
  const double mean[3] = {0.485, 0.456, 0.406}, sd[3] = {0.229, 0.224, 0.225};
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 2; ++j) {
      for (int c = 0; c < 3; ++c) {
        const double want = ((block[i][j] + c) / 255.0 - mean[c]) / sd[c];
        CHECK(out[static_cast<size_t>((i * 2 + j) * 3 + c)] == doctest::Approx(want).epsilon(1e-5));
      }
    }
  }
}

TEST_CASE("image source: augmentation is reproducible for any seed, thread count and batch split") {
  ThreadsGuard guard;
  TempDir dir;
  make_train(dir.path());
  const ImageFolderSource src(index_image_folder(dir.path(), split("train")), 24, 20, Preprocess::torch, true,
                              OnBadImage::fail);
  const int64_t n = src.size(), per = src.example_floats();
  const std::vector<int32_t> idx = {5, 0, 3, 1, 4, 2, 0};  // 0 twice: same seed, same output
  const auto m = static_cast<int64_t>(idx.size());
  auto run = [&](uint64_t seed, int threads) {
    qatc::set_num_threads(threads);
    std::vector<float> x(static_cast<size_t>(m * per));
    std::vector<int32_t> y(static_cast<size_t>(m));
    src.gather(idx.data(), m, x.data(), y.data(), seed);
    CHECK(y == std::vector<int32_t>{2, 0, 1, 0, 1, 0, 0});
    return x;
  };
  const auto a = run(7, 1);
  CHECK(a == run(7, 1));
  CHECK(a == run(7, 2));
  CHECK(a != run(8, 2));
  // Example 1 and 6 are both image 0 with the same seed.
  CHECK(std::equal(a.begin() + per, a.begin() + 2 * per, a.begin() + 6 * per));
  // One example at a time gives the same as the batch.
  std::vector<float> one(static_cast<size_t>(per));
  for (int64_t i = 0; i < m; ++i) {
    src.load(idx[static_cast<size_t>(i)], one.data(), 7);
    CHECK(std::equal(one.begin(), one.end(), a.begin() + i * per));
  }
  // Different seeds differ for every image (crop and flip are drawn per image).
  qatc::set_num_threads(2);
  std::vector<float> s1(static_cast<size_t>(n * per)), s2(s1.size());
  std::vector<int32_t> y(static_cast<size_t>(n));
  const auto all = iota(static_cast<int32_t>(n));
  src.gather(all.data(), n, s1.data(), y.data(), 100);
  src.gather(all.data(), n, s2.data(), y.data(), 101);
  for (int64_t i = 0; i < n; ++i) {
    CHECK_FALSE(std::equal(s1.begin() + i * per, s1.begin() + (i + 1) * per, s2.begin() + i * per));
  }
  // Without augmentation, the seed does not matter.
  const ImageFolderSource eval(src.index(), 24, 20, Preprocess::tf, false, OnBadImage::fail);
  eval.gather(all.data(), n, s1.data(), y.data(), 1);
  eval.gather(all.data(), n, s2.data(), y.data(), 2);
  CHECK(s1 == s2);
}

TEST_CASE("image source: a non-image file is skipped (next image, warned once) or fails naming the file") {
  ThreadsGuard guard;
  TempDir dir;
  make_train(dir.path());
  write_text(dir / "train/n01/d.JPEG", "this is text, not a JPEG\n");  // sorted after c.Jpeg
  const ImageIndex idx = index_image_folder(dir.path(), split("train"));
  REQUIRE(idx.files.size() == 7);
  const std::string bad = (dir / "train/n01/d.JPEG").string();
  REQUIRE(idx.files[1] == bad);

  const ImageFolderSource skip(idx, 16, 16, Preprocess::tf, false, OnBadImage::skip);
  const int64_t per = skip.example_floats();
  const auto all = iota(7);
  std::vector<float> x(static_cast<size_t>(7 * per));
  std::vector<int32_t> y(7);
  qatc::set_num_threads(2);
  skip.gather(all.data(), 7, x.data(), y.data(), 0);
  CHECK(skip.bad_images() == std::vector<int32_t>{1});
  // Example 1 is image 2 (the next decodable one), with its label.
  CHECK(y == std::vector<int32_t>{0, 0, 0, 0, 1, 1, 2});
  CHECK(std::equal(x.begin() + per, x.begin() + 2 * per, x.begin() + 2 * per));
  // The same again, serially: identical.
  qatc::set_num_threads(1);
  std::vector<float> x1(x.size());
  skip.gather(all.data(), 7, x1.data(), y.data(), 0);
  CHECK(x1 == x);

  const ImageFolderSource strict(idx, 16, 16, Preprocess::tf, false, OnBadImage::fail);
  const std::string msg = error_of([&] { strict.gather(all.data(), 7, x.data(), y.data(), 0); });
  check_error(msg, bad, "not a JPEG or PNG image");
  CHECK(contains(msg, "on_bad_image: skip"));
  // Only images before it: fine.
  CHECK_NOTHROW(strict.gather(all.data(), 1, x.data(), y.data(), 0));

  // The last image bad: the replacement wraps around to the first.
  write_text(dir / "train/n03/r.JPEG", "");
  const ImageIndex idx2 = index_image_folder(dir.path(), split("train"));
  REQUIRE(idx2.files.back() == (dir / "train/n03/r.JPEG").string());
  const ImageFolderSource wrap(idx2, 16, 16, Preprocess::caffe, false, OnBadImage::skip);
  std::vector<float> a(static_cast<size_t>(per)), b(static_cast<size_t>(per));
  CHECK(wrap.load(7, a.data(), 0) == 0);
  CHECK(wrap.load(0, b.data(), 0) == 0);
  CHECK(a == b);

  // A file deleted after indexing is an error even with skip (the folder changed).
  fs::remove(dir / "train/n03/q.JPEG");
  check_error(error_of([&] { wrap.load(6, a.data(), 0); }), (dir / "train/n03/q.JPEG").string(),
              "cannot open the image");

  // No decodable image at all.
  TempDir junk;
  write_text(junk / "train/n01/a.jpg", "x");
  write_text(junk / "train/n02/b.png", "y");
  const ImageFolderSource none(index_image_folder(junk.path(), split("train")), 8, 8, Preprocess::tf, false,
                               OnBadImage::skip);
  check_error(error_of([&] { none.load(0, a.data(), 0); }), none.name(), "none of its 2 images can be decoded");
  check_error(error_of([&] { ImageFolderSource(idx, 0, 16, Preprocess::tf, false, OnBadImage::skip); }), idx.name,
              "out of range");
}

TEST_CASE("batch prefetcher: the same batches as gather, errors at their batch, clean shutdown") {
  ThreadsGuard guard;
  qatc::set_num_threads(2);
  TempDir dir;
  make_train(dir.path());
  write_png(dir / "train/n03/w.png", 45, 33, 9);
  write_jpg(dir / "train/n02/k.jpg", 28, 52, 10);
  const ImageFolderSource src(index_image_folder(dir.path(), split("train")), 12, 14, Preprocess::tf, true,
                              OnBadImage::fail);
  const int64_t per = src.example_floats(), batch = 3;
  qatc::Rng shuffle(5);
  const std::vector<int32_t> order = shuffle.permutation(static_cast<int32_t>(src.size()));  // 8 images
  const uint64_t seed = 1234;

  for (int threads : {1, 2, 3}) {
    INFO("decode threads " << threads);
    BatchPrefetcher pf(src, order, batch, seed, threads);
    CHECK(pf.batches() == 3);
    std::vector<float> x(static_cast<size_t>(batch * per)), want(x.size());
    std::vector<int32_t> y(static_cast<size_t>(batch)), want_y(y.size());
    int64_t n = 0, k = 0;
    while (pf.next(x.data(), y.data(), &n)) {
      const int64_t expect_n = std::min<int64_t>(batch, static_cast<int64_t>(order.size()) - k * batch);
      REQUIRE(n == expect_n);
      src.gather(order.data() + k * batch, n, want.data(), want_y.data(), seed);
      CHECK(std::equal(x.begin(), x.begin() + n * per, want.begin()));
      CHECK(std::equal(y.begin(), y.begin() + n, want_y.begin()));
      ++k;
    }
    CHECK(k == 3);
    CHECK(n == 0);
    CHECK_FALSE(pf.next(x.data(), y.data(), &n));
  }

  // Destroyed before, or in the middle of, consuming: no hang, no crash.
  { BatchPrefetcher pf(src, order, 2, seed); }
  {
    BatchPrefetcher pf(src, order, 2, seed, 2);
    std::vector<float> x(static_cast<size_t>(2 * per));
    std::vector<int32_t> y(2);
    int64_t n = 0;
    CHECK(pf.next(x.data(), y.data(), &n));
  }
  {
    BatchPrefetcher pf(src, {}, 4, seed);
    CHECK(pf.batches() == 0);
    std::vector<float> x(1);
    int32_t y = 0;
    int64_t n = 9;
    CHECK_FALSE(pf.next(x.data(), &y, &n));
    CHECK(n == 0);
  }

  // A bad image in batch 1 (of 2-image batches): batch 0 arrives, then the error, on every later call.
  write_text(dir / "train/n01/d.JPEG", "not an image");
  const ImageFolderSource strict(index_image_folder(dir.path(), split("train")), 12, 14, Preprocess::tf, false,
                                 OnBadImage::fail);
  const std::string bad = (dir / "train/n01/d.JPEG").string();
  REQUIRE(strict.index().files[1] == bad);
  BatchPrefetcher pf(strict, {4, 5, 6, 1, 0, 2}, 2, seed, 2);
  std::vector<float> x(static_cast<size_t>(2 * per));
  std::vector<int32_t> y(2);
  int64_t n = 0;
  CHECK(pf.next(x.data(), y.data(), &n));
  CHECK(n == 2);
  for (int i = 0; i < 2; ++i) {
    check_error(error_of([&] { pf.next(x.data(), y.data(), &n); }), bad, "not a JPEG or PNG image");
  }
}
