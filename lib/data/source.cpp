// Example sources: in-memory datasets and image folders.
#include "data/source.h"

#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/threads.h"
#include "data/catalog.h"
#include "data/image_folder.h"
#include "data/image_source.h"
#include "data/loader.h"

namespace qatc::data {
namespace {

// The default stream: gathers each batch when asked.
class GatherStream : public BatchStream {
 public:
  GatherStream(const Source& s, std::vector<int32_t> order, int64_t batch, bool augment, uint64_t seed)
      : s_(s), order_(std::move(order)), batch_(batch), augment_(augment), seed_(seed) {}
  bool next(float* x, int32_t* y, int64_t* n) override {
    const auto total = static_cast<int64_t>(order_.size());
    if (pos_ >= total) return false;
    *n = std::min(batch_, total - pos_);
    s_.gather(order_.data() + pos_, *n, x, y, augment_, seed_);
    pos_ += *n;
    return true;
  }

 private:
  const Source& s_;
  std::vector<int32_t> order_;
  int64_t batch_;
  bool augment_;
  uint64_t seed_;
  int64_t pos_ = 0;
};

// The prefetcher of image_source.h as a BatchStream.
class PrefetchStream : public BatchStream {
 public:
  PrefetchStream(const ImageFolderSource& s, std::vector<int32_t> order, int64_t batch, uint64_t seed)
      : p_(s, std::move(order), batch, seed, std::max(1, num_threads())) {}
  bool next(float* x, int32_t* y, int64_t* n) override { return p_.next(x, y, n); }

 private:
  BatchPrefetcher p_;
};

// An ImageNet-layout folder: images decoded, preprocessed (and augmented in training) on the fly.
class ImageSource : public Source {
 public:
  ImageSource(const ImageIndex& index, int64_t h, int64_t w, Preprocess p, bool augment, OnBadImage bad)
      : plain_(index, h, w, p, false, bad) {
    if (augment) augmented_ = std::make_unique<ImageFolderSource>(index, h, w, p, true, bad);
  }
  const std::string& name() const override { return plain_.name(); }
  int64_t size() const override { return plain_.size(); }
  int64_t h() const override { return plain_.h(); }
  int64_t w() const override { return plain_.w(); }
  int64_t c() const override { return 3; }
  int32_t classes() const override { return plain_.classes(); }
  void gather(const int32_t* idx, int64_t n, float* x, int32_t* y, bool augment, uint64_t seed) const override {
    of(augment).gather(idx, n, x, y, seed);
  }
  std::unique_ptr<BatchStream> stream(std::vector<int32_t> order, int64_t batch, bool augment,
                                      uint64_t seed) const override {
    return std::make_unique<PrefetchStream>(of(augment), std::move(order), batch, seed);
  }

 private:
  const ImageFolderSource& of(bool augment) const { return augment && augmented_ ? *augmented_ : plain_; }
  ImageFolderSource plain_;
  std::unique_ptr<ImageFolderSource> augmented_;
};

}  // namespace

std::unique_ptr<BatchStream> Source::stream(std::vector<int32_t> order, int64_t batch, bool augment,
                                            uint64_t seed) const {
  return std::make_unique<GatherStream>(*this, std::move(order), batch, augment, seed);
}

void MemorySource::gather(const int32_t* idx, int64_t n, float* x, int32_t* y, bool /*augment*/,
                          uint64_t /*seed*/) const {
  gather_batch(ds_, idx, n, norm_, x, y);
}

std::unique_ptr<Source> open_source(const recipe::DataSpec& spec, const std::string& split,
                                    const std::vector<int64_t>& model_input) {
  if (spec.dataset != "image_folder") return std::make_unique<MemorySource>(load_split(spec, split), spec);
  if (spec.path.empty())
    fail("data.path: dataset image_folder needs the folder holding train/ and val/; give it with --set data.path=DIR");
  if (model_input.size() != 3 || model_input[2] != 3)
    fail("data: image_folder gives RGB images; model.input must be [height, width, 3]");
  ImageFolderOptions o;
  o.split_dir = split == "test" ? spec.val_dir : "train";
  o.labels_file = split == "test" ? spec.labels_file : "";
  o.background_class = spec.background_class;
  ImageIndex index = index_image_folder(spec.path, o);
  spdlog::info("{}: {} images in {} classes", index.name, index.files.size(), index.classes);
  return std::make_unique<ImageSource>(index, model_input[0], model_input[1], parse_preprocess(spec.preprocess, "data.preprocess"),
                                       split == "train" && spec.augment,
                                       parse_on_bad_image(spec.on_bad_image, "data.on_bad_image"));
}

std::vector<int32_t> all_indices(const Source& s) {
  std::vector<int32_t> v(static_cast<size_t>(s.size()));
  for (int64_t i = 0; i < s.size(); ++i) v[static_cast<size_t>(i)] = static_cast<int32_t>(i);
  return v;
}

void check_fits(const Source& s, const std::vector<int64_t>& input, int64_t classes, const std::string& model) {
  if (input.size() != 3 || s.h() != input[0] || s.w() != input[1] || s.c() != input[2])
    fail("{}: images are {}x{}x{} but the model in {} takes input [{}, {}, {}]; fix model.input or the data", s.name(),
         s.h(), s.w(), s.c(), model, input.at(0), input.at(1), input.at(2));
  if (s.classes() > classes)
    fail("{}: {} classes but the model in {} outputs {} logits; the last dense layer needs units: {}", s.name(),
         s.classes(), model, classes, s.classes());
}

}  // namespace qatc::data
