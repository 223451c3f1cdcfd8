// Throughput of the image folder input pipeline: read + decode (stb_image) + preprocess, in images/s.
//
//   bench_image_pipeline [--dir ROOT] [--split NAME] [--images N] [--size S] [--batch B]
//                        [--threads 1,2] [--repeats R] [--json FILE]
//
// Without --dir, N JPEGs of ImageNet-like size (500x375, smooth random content with photo-like texture,
// quality 90) are written to a temporary folder, used, and deleted. With --dir, ROOT/<split>
// (default train) is indexed as an ImageNet-style folder and its first N images are used; when
// ROOT/<split> does not exist yet, the generated images are written there (in 10 class folders)
// and kept for later runs. Rows: decoding alone, then each preset (tf, caffe, torch) at SxS
// (default 224), eval and with training augmentation, each with every thread count of --threads
// (qatc::set_num_threads; ImageFolderSource::gather over batches of B). One untimed pass warms the
// page cache and the thread pool; then each repeat times one pass over the N images (round-robin
// over the rows of a thread count, so drifting load from other work hits every row alike), and the
// median (bench/stats.h) gives images/s (wall time) and the CPU time per image (all threads of the
// process: the cost, which other work on the machine disturbs less than the wall time); "best im/s"
// is the fastest repeat, the least disturbed one on a busy machine. The 1-minute load average is
// printed before and after, since other work on the machine slows every row.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <time.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

#include "stats.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/threads.h"
#include "data/image_folder.h"
#include "data/image_source.h"
#include "data/preprocess.h"

using namespace qatc;
using namespace qatc::data;
namespace fs = std::filesystem;

namespace {

constexpr int kGenW = 500, kGenH = 375, kGenQuality = 90, kGenClasses = 10;

// Smooth random content: a few random low-frequency waves per channel, a colour gradient, and
// mild texture so the JPEG has photo-like detail (a pure gradient decodes unrealistically fast).
std::vector<uint8_t> synth_image(uint64_t seed) {
  Rng rng(seed);
  struct Wave {
    float fx, fy, phase, amp;
  };
  std::vector<Wave> waves[3];
  for (auto& ch : waves) {
    for (int k = 0; k < 5; ++k) {
      ch.push_back({rng.uniform(0.002f, 0.05f), rng.uniform(0.002f, 0.05f), rng.uniform(0.0f, 6.283f),
                    rng.uniform(10.0f, 40.0f)});
    }
  }
  const float base[3] = {rng.uniform(60, 190), rng.uniform(60, 190), rng.uniform(60, 190)};
  std::vector<uint8_t> px(static_cast<size_t>(kGenW * kGenH * 3));
  for (int y = 0; y < kGenH; ++y) {
    for (int x = 0; x < kGenW; ++x) {
      const float texture = rng.normal() * 16.0f + 14.0f * std::sin(0.9f * static_cast<float>(x)) *
                                                       std::sin(0.7f * static_cast<float>(y));
      for (int c = 0; c < 3; ++c) {
        float v = base[c] + 0.05f * static_cast<float>(x - y) * static_cast<float>(c - 1) + texture;
        for (const Wave& w : waves[c]) {
          v += w.amp * std::sin(w.fx * static_cast<float>(x) + w.fy * static_cast<float>(y) + w.phase);
        }
        px[static_cast<size_t>((y * kGenW + x) * 3 + c)] =
            static_cast<uint8_t>(std::lround(std::fmin(255.0f, std::fmax(0.0f, v))));
      }
    }
  }
  return px;
}

// Writes n JPEGs into split/c<k>/img<i>.JPEG (round-robin over the classes).
void generate(const fs::path& split, int64_t n) {
  std::printf("writing %lld JPEGs of %dx%d (quality %d) to %s\n", static_cast<long long>(n), kGenW, kGenH,
              kGenQuality, split.c_str());
  for (int64_t i = 0; i < n; ++i) {
    const fs::path dir = split / fmt::format("c{:03d}", i % kGenClasses);
    fs::create_directories(dir);
    const auto px = synth_image(static_cast<uint64_t>(i) + 1);
    const std::string file = (dir / fmt::format("img{:06d}.JPEG", i)).string();
    if (!stbi_write_jpg(file.c_str(), kGenW, kGenH, 3, px.data(), kGenQuality)) {
      std::fprintf(stderr, "cannot write %s\n", file.c_str());
      std::exit(1);
    }
  }
}

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double load_average() {
  std::ifstream in("/proc/loadavg");
  double v = -1;
  in >> v;
  return v;
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t end = s.find(',', pos);
    if (end == std::string::npos) end = s.size();
    out.push_back(std::max(1, std::atoi(s.substr(pos, end - pos).c_str())));
    pos = end + 1;
  }
  return out;
}

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: bench_image_pipeline [--dir ROOT] [--split NAME] [--images N] [--size S] [--batch B] "
               "[--threads 1,2] [--repeats R] [--json FILE]\n");
  std::exit(2);
}

struct Row {
  std::string config;
  int threads;
  std::vector<double> seconds, cpu_seconds;  // wall, and CPU of all threads, per repeat
};

}  // namespace

int main(int argc, char** argv) try {
  std::string dir, split_name = "train", json_path, threads_arg = "1,2";
  int64_t images = 200, size = 224, batch = 32;
  int repeats = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage();
    const char* v = argv[++i];
    if (a == "--dir") dir = v;
    else if (a == "--split") split_name = v;
    else if (a == "--images") images = std::max(1, std::atoi(v));
    else if (a == "--size") size = std::max(1, std::atoi(v));
    else if (a == "--batch") batch = std::max(1, std::atoi(v));
    else if (a == "--threads") threads_arg = v;
    else if (a == "--repeats") repeats = std::max(1, std::atoi(v));
    else if (a == "--json") json_path = v;
    else usage();
  }

  // The images: generated into a temporary folder, or an existing (or to be generated) ROOT.
  fs::path root;
  bool temporary = false;
  if (dir.empty()) {
    root = fs::temp_directory_path() / fmt::format("qatc_bench_images_{}", ::getpid());
    temporary = true;
    generate(root / split_name, images);
  } else {
    root = dir;
    if (!fs::exists(root / split_name)) generate(root / split_name, images);
  }
  ImageFolderOptions opt;
  opt.split_dir = split_name;
  ImageIndex index = index_image_folder(root, opt);
  if (static_cast<int64_t>(index.files.size()) > images) {
    index.files.resize(static_cast<size_t>(images));
    index.labels.resize(static_cast<size_t>(images));
  }
  const int64_t n = static_cast<int64_t>(index.files.size());
  double bytes = 0;
  for (const auto& f : index.files) bytes += static_cast<double>(fs::file_size(f));
  DecodedImage first;
  std::string why;
  const bool first_ok = decode_image_file(index.files[0], &first, &why);

  std::vector<int32_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = static_cast<int32_t>(i);
  std::vector<float> x(static_cast<size_t>(batch * size * size * 3));
  std::vector<int32_t> y(static_cast<size_t>(batch));

  struct Config {
    std::string name;
    std::function<void(uint64_t)> pass;  // one pass over the n images
  };
  std::vector<Config> configs;
  configs.push_back({"decode only", [&](uint64_t) {
                       parallel_for(n, 1, [&](int64_t b, int64_t e) {
                         DecodedImage img;
                         std::string w;
                         for (int64_t i = b; i < e; ++i) decode_image_file(index.files[static_cast<size_t>(i)], &img, &w);
                       });
                     }});
  std::vector<std::unique_ptr<ImageFolderSource>> sources;
  for (bool augment : {false, true}) {
    for (Preprocess p : {Preprocess::tf, Preprocess::caffe, Preprocess::torch}) {
      sources.push_back(std::make_unique<ImageFolderSource>(index, size, size, p, augment, OnBadImage::fail));
      const ImageFolderSource* src = sources.back().get();
      configs.push_back({fmt::format("{}{}", preprocess_name(p), augment ? " +augment" : ""), [&, src](uint64_t seed) {
                           for (int64_t b = 0; b < n; b += batch) {
                             const int64_t m = std::min(batch, n - b);
                             src->gather(order.data() + b, m, x.data(), y.data(), seed);
                           }
                         }});
    }
  }

  const std::vector<int> thread_counts = parse_list(threads_arg);
  std::printf("image pipeline: %lld images from %s (first %lldx%lld, mean %.0f KiB), to %lldx%lld, batch %lld, "
              "median of %d, load %.2f\n",
              static_cast<long long>(n), (root / split_name).c_str(),
              static_cast<long long>(first_ok ? first.w : 0), static_cast<long long>(first_ok ? first.h : 0),
              bytes / static_cast<double>(n) / 1024.0, static_cast<long long>(size), static_cast<long long>(size),
              static_cast<long long>(batch), repeats, load_average());
  std::printf("%-16s %7s %10s %9s %13s %10s\n", "config", "threads", "images/s", "ms/image", "cpu ms/image",
              "best im/s");
  // Every row, for one thread count at a time; the repeats go round the configs (one pass of each
  // per round), so that load from other work drifting over time hits all rows alike.
  std::vector<Row> rows;
  for (int t : thread_counts) {
    set_num_threads(t);
    const size_t base = rows.size();
    for (const Config& c : configs) {
      c.pass(0);  // warm-up
      rows.push_back(Row{c.name, t, {}, {}});
    }
    for (int k = 0; k < repeats; ++k) {
      for (size_t ci = 0; ci < configs.size(); ++ci) {
        Row& r = rows[base + ci];
        const double c0 = cpu_seconds();
        const auto t0 = std::chrono::steady_clock::now();
        configs[ci].pass(static_cast<uint64_t>(k) + 1);
        r.seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        r.cpu_seconds.push_back(cpu_seconds() - c0);
      }
    }
    for (size_t ci = 0; ci < configs.size(); ++ci) {
      const Row& r = rows[base + ci];
      const double med = bench::median(r.seconds), cpu = bench::median(r.cpu_seconds);
      const double best = *std::min_element(r.seconds.begin(), r.seconds.end());
      std::printf("%-16s %7d %10.1f %9.2f %13.2f %10.1f\n", r.config.c_str(), t, static_cast<double>(n) / med,
                  med * 1e3 / static_cast<double>(n), cpu * 1e3 / static_cast<double>(n),
                  static_cast<double>(n) / best);
    }
    std::fflush(stdout);
  }
  std::printf("load average at the end: %.2f\n", load_average());

  if (!json_path.empty()) {
    nlohmann::json j;
    j["images"] = n;
    j["folder"] = (root / split_name).string();
    j["mean_file_bytes"] = bytes / static_cast<double>(n);
    j["first_image"] = {first_ok ? first.w : 0, first_ok ? first.h : 0};
    j["size"] = size;
    j["batch"] = batch;
    j["repeats"] = repeats;
    for (const Row& r : rows) {
      const double med = bench::median(r.seconds);
      j["rows"].push_back({{"config", r.config},
                           {"threads", r.threads},
                           {"images_per_s", static_cast<double>(n) / med},
                           {"ms_per_image", med * 1e3 / static_cast<double>(n)},
                           {"cpu_ms_per_image", bench::median(r.cpu_seconds) * 1e3 / static_cast<double>(n)},
                           {"seconds", r.seconds},
                           {"cpu_seconds", r.cpu_seconds}});
    }
    std::ofstream out(json_path);
    out << j.dump(2) << "\n";
    if (!out) {
      std::fprintf(stderr, "cannot write %s\n", json_path.c_str());
      return 1;
    }
  }
  if (temporary) fs::remove_all(root);
  return 0;
} catch (const qatc::Error& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 2;
}
