// Float batches from an indexed image folder: read the files, decode them (JPEG or PNG, via
// stb_image), preprocess (data/preprocess.h) and write [n, out_h, out_w, 3] floats plus labels;
// and a prefetcher that prepares the next batch on a background thread.
//
// Reproducibility: example i of a gather with seed s depends only on (its index, s): the
// augmentation Rng is seeded with derive_seed(s, kImageAugmentTag, index), and nothing depends on
// the batch it is in, its position there or the thread that decodes it. So the same (order,
// seed) gives bit-identical batches for any thread count, batch split or prefetching.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "data/image_folder.h"
#include "data/preprocess.h"

namespace qatc::data {

// What a file that is not a decodable image does: skip warns once (naming the file) and uses the
// next decodable image of the index in its place (with that image's label), the same one every
// time; fail raises qatc::Error naming the file.
enum class OnBadImage { skip, fail };

// "skip" or "fail"; anything else raises qatc::Error naming `where`.
OnBadImage parse_on_bad_image(const std::string& name, const std::string& where = "on_bad_image");

// The tag of the augmentation seeds: derive_seed(seed, kImageAugmentTag, index).
inline constexpr uint64_t kImageAugmentTag = 0x696d672d61756721ull;

// Limits on one file: larger files or images count as bad images (a forged header cannot make
// qatc allocate more).
inline constexpr int64_t kMaxImageFileBytes = int64_t{512} << 20;  // 512 MiB
inline constexpr int64_t kMaxImagePixels = int64_t{1} << 27;       // 134 megapixels

// A decoded image: h x w x 3 RGB bytes, row-major.
struct DecodedImage {
  int64_t h = 0, w = 0;
  std::vector<uint8_t> rgb;
};

// Reads and decodes one image file (JPEG or PNG, whatever its extension says; grayscale, CMYK and
// RGBA are converted to RGB). Returns false with *why set ("not a JPEG or PNG image (...)", "empty
// file", "not a regular file", a damaged JPEG Huffman table, ...) when the content is not a
// decodable image within the limits above; JPEG tables that would overflow stb_image 2.27's
// decoder are rejected before it runs (see image_source.cpp). A file that cannot be opened or read
// (missing, permissions, I/O error) raises qatc::Error naming it.
bool decode_image_file(const std::string& path, DecodedImage* out, std::string* why);

class ImageFolderSource {
 public:
  // Raises qatc::Error for an empty index or a non-positive output size.
  ImageFolderSource(ImageIndex index, int64_t out_h, int64_t out_w, Preprocess preprocess, bool augment,
                    OnBadImage on_bad);

  const ImageIndex& index() const { return index_; }
  const std::string& name() const { return index_.name; }
  int64_t size() const { return static_cast<int64_t>(index_.files.size()); }
  int32_t classes() const { return index_.classes; }
  int64_t h() const { return out_h_; }
  int64_t w() const { return out_w_; }
  int64_t c() const { return 3; }
  int64_t example_floats() const { return out_h_ * out_w_ * 3; }  // per image in x
  Preprocess preprocess() const { return preprocess_; }
  bool augment() const { return augment_; }

  // Writes examples idx[0..n) as floats x [n, h, w, 3] and their labels y [n]: decode plus the
  // preset's eval transform, or its training augmentation with augment. Runs on qatc's threads
  // (parallel_for), so call it from one thread at a time. Raises qatc::Error for a bad image
  // with OnBadImage::fail, for an unreadable file, and when no image of the index decodes.
  void gather(const int32_t* idx, int64_t n, float* x, int32_t* y, uint64_t seed) const;

  // One example (what gather does for each): writes example_floats() floats to x and returns the
  // label; with skip, the replacement image's. Runs on the calling thread only; thread-safe.
  int32_t load(int32_t index, float* x, uint64_t seed) const;

  // The indices found bad so far (each was warned about once), sorted.
  std::vector<int32_t> bad_images() const;

 private:
  bool known_bad(int64_t k) const;
  // Records k as bad; true the first time (the caller then warns).
  bool mark_bad(int64_t k) const;

  ImageIndex index_;
  int64_t out_h_, out_w_;
  Preprocess preprocess_;
  bool augment_;
  OnBadImage on_bad_;
  mutable std::mutex bad_mu_;
  mutable std::unordered_set<int64_t> bad_;
};

// Prepares batch k + 1 (and k + 2) on a background thread while the caller consumes batch k.
// Batch k is order[k * batch, min((k + 1) * batch, order.size())) and holds exactly what
// source.gather(order.data() + k * batch, n, x, y, seed) writes. `decode_threads` threads decode
// in the background (the background thread plus decode_threads - 1 helpers per batch); they never
// use qatc's thread pool, which cannot serve two callers at once, so the caller may run
// parallel_for work (a training step) meanwhile. The source must outlive the prefetcher and not be
// used by others meanwhile except through const, thread-safe calls (load, gather on one thread).
class BatchPrefetcher {
 public:
  BatchPrefetcher(const ImageFolderSource& source, std::vector<int32_t> order, int64_t batch, uint64_t seed,
                  int decode_threads = 1);
  // Stops the background work (at the next image) and joins its threads; never throws.
  ~BatchPrefetcher();
  BatchPrefetcher(const BatchPrefetcher&) = delete;
  BatchPrefetcher& operator=(const BatchPrefetcher&) = delete;

  // For one consumer thread. Copies the next batch into x (room for batch * source.example_floats() floats) and y (batch
  // labels) and sets *n to its size; returns false once every batch was returned. An exception
  // raised while preparing a batch (e.g. qatc::Error for a bad image with OnBadImage::fail) is
  // rethrown here, by the call that would have returned that batch, and by every later call.
  bool next(float* x, int32_t* y, int64_t* n);

  int64_t batches() const { return batches_; }

 private:
  struct Slot {
    std::vector<float> x;
    std::vector<int32_t> y;
    int64_t n = 0;
  };
  void run();
  // Fills `slot` with batch k; false when stopped midway.
  bool fill(Slot& slot, int64_t k);

  const ImageFolderSource& source_;
  std::vector<int32_t> order_;
  int64_t batch_, batches_;
  uint64_t seed_;
  int decode_threads_;

  Slot work_, ready_;
  bool ready_full_ = false;  // ready_ holds the next batch for next()
  bool finished_ = false;    // every batch was handed to ready_
  std::exception_ptr error_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
};

}  // namespace qatc::data
