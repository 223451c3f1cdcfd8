// The shipped ImageNet recipes run end to end (train a few steps, PTQ, QAT, convert, eval,
// report) on a tiny image folder written here, at a reduced input size: each architecture,
// its preprocessing and the image-folder data path work together, and the int8 model agrees
// with the fake-quant model it came from.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

// stb_image_write's implementation for this test binary.
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

#include "pipeline/run_folder.h"
#include "pipeline/stages.h"
#include "recipe/load.h"

using namespace qatc;
namespace fs = std::filesystem;

namespace {

// A w x h RGB JPEG whose colour pattern depends on the class, plus noise from `seed`.
void write_image(const fs::path& p, int w, int h, int cls, int seed) {
  fs::create_directories(p.parent_path());
  std::vector<uint8_t> px(static_cast<size_t>(w * h * 3));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        const double v = 128 + 90 * std::sin(0.3 * (cls + 1) * (c == cls ? x : y) + seed) + ((x * 7 + y * 13 + seed) % 11);
        px[static_cast<size_t>((y * w + x) * 3 + c)] = static_cast<uint8_t>(std::lround(std::clamp(v, 0.0, 255.0)));
      }
  REQUIRE(stbi_write_jpg(p.c_str(), w, h, 3, px.data(), 90) != 0);
}

// root/train/<wnid>/ with 4 images per class; root/val/ flat with a caffe-style labels file.
fs::path make_folder() {
  const fs::path root = fs::temp_directory_path() / ("qatc_imagenet_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  const char* wnids[] = {"n01440764", "n01443537", "n01484850"};
  std::ofstream labels(root / "val.txt");
  for (int c = 0; c < 3; ++c) {
    for (int i = 0; i < 4; ++i) write_image(root / "train" / wnids[c] / (std::to_string(i) + ".JPEG"), 48, 40, c, i);
    const std::string f = "ILSVRC2012_val_0000000" + std::to_string(c + 1) + ".JPEG";
    write_image(root / "val" / f, 44, 52, c, 9);
    labels << f << " " << c << "\n";
  }
  return root;
}

}  // namespace

TEST_CASE("imagenet recipes: each runs every stage on a tiny image folder at 32x32") {
  const fs::path root = make_folder();
  for (const std::string name : {"mobilenet_v1_224", "resnet50_v1", "mobilenet_v2_224", "nasnet_mobile", "resnet50_v2"}) {
    CAPTURE(name);
    const fs::path out = root / ("run_" + name);
    recipe::Recipe rc = recipe::load_recipe(
        fs::path(QATC_SOURCE_DIR) / "recipes/imagenet" / (name + ".yaml"),
        {"data.path=" + root.string(), "data.labels_file=" + (root / "val.txt").string(), "model.input=[32, 32, 3]",
         "stages=[train, ptq, qat, convert, eval, report]", "train.epochs=1", "train.batch_size=4",
         "train.schedule.warmup_steps=0", "train.optimizer.lr=0.01", "ptq.batches=1", "ptq.batch_size=4", "qat.steps=2", "qat.batch_size=4",
         "qat.freeze_bn_after_steps=1", "eval.batch_size=2", "eval.latency_images=5"});
    pipeline::RunFolder run{out};
    pipeline::StageOptions opt;
    const nlohmann::json report = pipeline::run_stages(rc, run, opt).at("report");
    // Every row, and the integer models agree with the fake-quant ones on the 3 val images.
    std::vector<std::string> rows;
    for (const auto& r : report.at("results")) {
      rows.push_back(r.at("model").get<std::string>());
      CHECK(r.at("examples").get<int64_t>() == 3);
      if (r.contains("agreement_with_fakequant")) CHECK(r["agreement_with_fakequant"].at("top1").get<double>() == 1.0);
    }
    CHECK(rows == std::vector<std::string>{"float", "ptq_fakequant", "qat_fakequant", "ptq_int8", "qat_int8"});
    CHECK(fs::exists(out / "qat.int8"));
  }
  fs::remove_all(root);
}
