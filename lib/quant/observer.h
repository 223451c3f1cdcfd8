// Activation range observers: the float [min, max] that QAT learns from the batches it sees
// and that choose_qparams turns into (scale, zero_point).
#pragma once

#include <cstdint>

#include "core/bytes.h"

namespace qatc::quant {

enum class ObserverKind {
  ema_minmax,  // moving average of each batch's min and max (the toolkit's activation default)
  minmax,      // running min and max over every batch seen
};

enum class ObserverInit {
  first_batch,  // the first batch's min/max is the starting range (qatc's default)
  fixed,        // start from [init_min, init_max] (the toolkit's [-6, 6])
};

struct ObserverConfig {
  ObserverKind kind = ObserverKind::ema_minmax;
  double ema_decay = 0.999;
  ObserverInit init = ObserverInit::first_batch;
  float init_min = -6.0f, init_max = 6.0f;
};

class Observer {
 public:
  // Raises qatc::Error for ema_decay outside [0, 1] or a fixed init with init_min > init_max
  // or non-finite bounds (the config comes from the recipe).
  explicit Observer(ObserverConfig config);

  // Folds in the batch's min/max over its finite values (tensor_minmax); a batch with no
  // finite value changes nothing. minmax: min = min(min, batch_min), max likewise.
  // ema_minmax: min = decay * min + (1 - decay) * batch_min, max likewise, in double.
  // With init first_batch the first batch sets min/max directly; with fixed the state starts
  // at [init_min, init_max] and the first batch is already averaged (or min/max'ed) into it.
  void update(const float* x, int64_t n);

  // False until a first batch (first_batch init) or set(); always true with fixed init.
  bool initialized() const { return initialized_; }
  float min() const { return static_cast<float>(min_); }
  float max() const { return static_cast<float>(max_); }
  const ObserverConfig& config() const { return config_; }

  // Overrides the range (e.g. from PTQ calibration); marks the observer initialized.
  // min, max must be finite with min <= max (checked).
  void set(float min, float max);

  // State only (initialized flag, min, max as doubles); the config comes from the recipe.
  void save(ByteWriter& w) const;
  // Reads what save wrote; a flag other than 0/1, non-finite or inverted bounds -> qatc::Error.
  void load(ByteReader& r);

 private:
  ObserverConfig config_;
  bool initialized_ = false;
  double min_ = 0.0, max_ = 0.0;  // double so long EMA runs do not drift by float rounding
};

}  // namespace qatc::quant
