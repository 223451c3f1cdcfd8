// Where training and evaluation read examples from: an in-memory uint8 dataset (MNIST,
// Fashion-MNIST) or an image folder decoded on the fly (ImageNet layout). Both give model-input
// floats for a list of example indices; the in-memory one also gives its raw pixels, which the
// integer model takes exactly (docs/int8.md, "The image input").
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "recipe/recipe.h"

namespace qatc::data {

// Batches of an epoch in a fixed order, possibly prepared ahead on a background thread.
class BatchStream {
 public:
  virtual ~BatchStream() = default;
  // Copies the next batch into x [batch, h, w, c] and y [batch]; false after the last one.
  virtual bool next(float* x, int32_t* y, int64_t* n) = 0;
};

class Source {
 public:
  virtual ~Source() = default;
  virtual const std::string& name() const = 0;
  virtual int64_t size() const = 0;
  virtual int64_t h() const = 0;
  virtual int64_t w() const = 0;
  virtual int64_t c() const = 0;
  virtual int32_t classes() const = 0;
  int64_t example_floats() const { return h() * w() * c(); }

  // Model-input floats x [n, h, w, c] and labels y [n] of examples idx[0..n). `augment`: the
  // source's training augmentation (if it has one), example i seeded by (seed, idx[i]) alone.
  virtual void gather(const int32_t* idx, int64_t n, float* x, int32_t* y, bool augment, uint64_t seed) const = 0;

  // The batches order[k * batch, ...) as gather would write them. The default gathers on
  // demand; an image folder decodes the next batches on a background thread.
  virtual std::unique_ptr<BatchStream> stream(std::vector<int32_t> order, int64_t batch, bool augment,
                                              uint64_t seed) const;

  // The raw pixels when the model input is the affine map (pixel / 255 - mean) / std of them,
  // else nullptr.
  virtual const Dataset* pixels() const { return nullptr; }
};

// An in-memory Dataset with the recipe's normalization.
class MemorySource : public Source {
 public:
  MemorySource(Dataset ds, const recipe::DataSpec& norm) : ds_(std::move(ds)), norm_(norm) {}
  const std::string& name() const override { return ds_.name; }
  int64_t size() const override { return ds_.n; }
  int64_t h() const override { return ds_.h; }
  int64_t w() const override { return ds_.w; }
  int64_t c() const override { return ds_.c; }
  int32_t classes() const override { return ds_.classes; }
  void gather(const int32_t* idx, int64_t n, float* x, int32_t* y, bool augment, uint64_t seed) const override;
  const Dataset* pixels() const override { return &ds_; }

 private:
  Dataset ds_;
  recipe::DataSpec norm_;
};

// The recipe's data, split "train" or "test": an IDX dataset (load_split) or an image folder
// (`dataset: image_folder`; "test" reads the val folder). Raises qatc::Error naming the file.
std::unique_ptr<Source> open_source(const recipe::DataSpec& spec, const std::string& split,
                                    const std::vector<int64_t>& model_input);

// All indices 0..size-1.
std::vector<int32_t> all_indices(const Source& s);

// Checks that a source fits a model input [h, w, c] and class count; raises qatc::Error.
void check_fits(const Source& s, const std::vector<int64_t>& input, int64_t classes, const std::string& model);

}  // namespace qatc::data
