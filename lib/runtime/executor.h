// The int8 executor: runs an IntModel on uint8 images with the integer kernels. Activation
// memory is planned once per model (one arena; tensors whose lifetimes do not overlap share
// memory; reshapes are views) and grown only when a larger batch arrives.
//
// A large batch runs in passes of a few images each (unless every tensor is kept): the whole
// model over images [0, k), then [k, 2k), ..., where k keeps the pass's activation arena
// within kPassActivationBytes. Each layer's weights are then read once per pass instead of
// once per batch, but the activations a layer writes are still in the caches when the next
// layer reads them (at batch 32 the tensors of ResNet50's first stage are 25 MB each).
// Measured (2026-11-28, amx, 1 thread, batch 32, ms, fastest of 3 interleaved runs of
// `qatc bench FILE --batch 32` with the pass size forced):
//   pass of           4      8   12/13     20     32 (one pass)
//   ResNet50 v1   385.7  377.8   371.6      -  406.6   (pass 16: 379.7)
//   MobileNet v1   82.2   82.8    84.4   88.9   92.0
//   MobileNetV2   106.9  110.3   109.9  111.6  115.0
// 32 MB gives passes of 12 (ResNet50), 20 (MobileNet v1 224) and 13 (MobileNetV2) images;
// the MNIST models' passes are hundreds of images. The results do not depend on the passes:
// every kernel computes each image on its own.

#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/opt/kernels.h"
#include "runtime/int_model.h"

namespace qatc::runtime {

// Which int8 kernels executors run: "opt" (default: the optimized kernels on the fastest
// instruction set this CPU has), an instruction set of them ("portable", "avx2", "avx_vnni",
// "avx512_vnni", "amx"), or "ref" (the scalar reference kernels, the oracle the others equal bit for
// bit). Raises qatc::Error for an unknown name or an instruction set the CPU lacks. Set it
// before creating executors (the CLI's --kernels).
void set_kernels(const std::string& name);
// "ref" or the instruction set of the optimized kernels, e.g. "avx512_vnni".
std::string kernels_in_use();

// Runs every kernel's argument checks on the model's parameters (raises qatc::Error naming
// the layer); load_int_model calls it so that any loaded model can be executed.
void check_kernels(const IntModel& m, const std::string& what);

// Bytes of the largest set of tensors one layer touches at once: its input tensors and its
// output, at batch n (int8: one byte per element; reshapes are views and count for nothing).
// With the model file's size it makes the memory bound of docs/performance.md.
int64_t largest_activation_pair_bytes(const IntModel& m, int64_t n);

// The activation bytes a pass of a large batch may take (see the top of this file); executors
// created after set_pass_activation_bytes use its value (tests make passes of a few images).
inline constexpr int64_t kPassActivationBytes = int64_t{32} << 20;
void set_pass_activation_bytes(int64_t bytes);

class Executor {
 public:
  // keep_all_tensors: give every tensor its own buffer so tensor() can read any of them after
  // run() (tests and per-layer reports); the default shares memory between tensors. `m` must
  // outlive the executor.
  Executor(const IntModel& m, int64_t max_batch, bool keep_all_tensors = false);
  // Takes the model. With the optimized kernels, each layer's int8 weights are released as soon
  // as they are packed, so only one copy of the weights is ever held (plus one layer while
  // packing); for a model that is only run. With the reference kernels the model is kept whole.
  Executor(IntModel&& m, int64_t max_batch);

  // The model run (without its int8 weights when an owning executor packed them).
  const IntModel& model() const { return m_; }

  // pixels [n, h, w, c] uint8 -> int8 logits [n, classes] (valid until the next call).
  const int8_t* run(const uint8_t* pixels, int64_t n);
  // The same from model-input floats x [n, h, w, c] (preprocessed images, e.g. an image folder):
  // q = clamp(round(x / scale) + zero_point) on the input tensor's grid, as the fake-quant
  // model's input quantizer computes it.
  const int8_t* run_float(const float* x, int64_t n);
  // Runs layer `layer` alone on n examples: inputs[k] holds its k-th input tensor, out its
  // output (must not overlap them). For per-layer checks and reports.
  void run_layer(size_t layer, const int8_t* const* inputs, int8_t* out, int64_t n);
  // The int8 output of tensor t from the last run (only the output, unless keep_all_tensors).
  const int8_t* tensor(size_t t) const { return arena_.data() + offset_[t] * max_batch_; }
  // Bytes of activation memory the plan uses at the current batch size.
  int64_t arena_bytes() const { return static_cast<int64_t>(arena_.size()); }

  // Per-layer timing (`qatc bench --profile`): while on, each run() / run_float() records the
  // wall time of every layer over all its passes: layer_ms()[i] for layer i (a conv that writes
  // the Add after it, fused, carries both; the Add's entry is then 0) and input_ms() for the
  // quantization of the input. Off by default: two clock reads per layer.
  void set_profile(bool on);
  const std::vector<double>& layer_ms() const { return layer_ms_; }
  double input_ms() const { return input_ms_; }
  // The layer whose kernel also does layer i's work (fused: an Add the conv before it writes,
  // a Pad the conv after it reads through), or -1.
  int done_by(size_t i) const;

 private:
  void init(int64_t max_batch, bool keep_all_tensors);  // plans the arena, packs the weights
  void pack();
  void pack_adds();  // packed_add_ (before the plan: a fused Add may need its tables)
  void reserve(int64_t n);
  // Runs n images in passes of up to pass_ images: quantize(q, b0, c) writes images
  // [b0, b0 + c) of the input into q, then the layers run on them.
  const int8_t* run_passes(int64_t n, const std::function<void(int8_t*, int64_t, int64_t)>& quantize);
  const int8_t* run_layers(int64_t n);
  // Runs layer li (with the Add fused into it, if any); returns the last layer index it ran.
  size_t run_step(size_t li, int64_t n);
  bool pad_read_through(size_t i) const;  // layer i is a Pad the conv after it reads through
  int32_t conv_source(size_t i) const;    // the tensor conv layer i reads (a fused Pad's input)
  int8_t* data(size_t t) { return arena_.data() + offset_[t] * max_batch_; }

  std::unique_ptr<IntModel> owned_;  // the model, when the executor took it
  const IntModel& m_;
  int64_t max_batch_ = 0;
  int64_t pass_ = 0;          // images per pass (0: the whole batch; keep_all_tensors)
  std::vector<int8_t> out_;  // the logits of a batch run in several passes
  // Activations: one arena of max_batch_ * arena_elems_ bytes; tensor t is the max_batch_
  // examples at offset_[t] * max_batch_.
  std::vector<int64_t> offset_;  // per tensor, per example
  int64_t arena_elems_ = 0;
  opt::AlignedVector<int8_t> arena_;
  std::vector<float> fin_, fout_, fwork_;  // float layers only
  std::vector<const int8_t*> ins_;         // the current layer's inputs (kept: no allocation per run)
  bool opt_ = true;                        // optimized kernels (else the reference ones)
  std::vector<std::unique_ptr<opt::PackedConv>> packed_;  // per layer: packed weights (opt conv/dense/depthwise)
  // Per Add layer: its tables (opt::pack_add) where the kernels add by tables; else null.
  std::vector<std::unique_ptr<opt::PackedAdd>> packed_add_;
  // Per layer: the Add layer whose output this conv writes itself (opt::conv2d_add_qs8; the
  // conv's own output is then never written and the Add is skipped), or -1.
  std::vector<int> fused_add_;
  // Per layer: the Pad layer before this conv or depthwise conv whose padding it adds to its
  // own, reading the Pad's input (the Pad is skipped and its output has no memory), or -1.
  std::vector<int> fused_pad_;
  bool profile_ = false;
  std::vector<double> layer_ms_;  // per layer, the last run (profile_ only)
  double input_ms_ = 0;
};

}  // namespace qatc::runtime
