// Range observers: minmax and EMA of per-batch min/max, with first-batch or fixed start.
#include "quant/observer.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "quant/fake_quant.h"

namespace qatc::quant {

Observer::Observer(ObserverConfig config) : config_(config) {
  if (!(config_.ema_decay >= 0.0 && config_.ema_decay <= 1.0))
    fail("observer ema_decay must be in [0, 1], got {}", config_.ema_decay);
  if (config_.init == ObserverInit::fixed) {
    if (!std::isfinite(config_.init_min) || !std::isfinite(config_.init_max) ||
        config_.init_min > config_.init_max)
      fail("observer fixed init needs finite init_min <= init_max, got [{}, {}]",
           config_.init_min, config_.init_max);
    min_ = config_.init_min;
    max_ = config_.init_max;
    initialized_ = true;
  }
}

void Observer::update(const float* x, int64_t n) {
  bool any = false;
  const MinMax b = tensor_minmax(x, n, &any);
  if (!any) return;  // {0, 0} is not this batch's range
  if (!initialized_) {
    min_ = b.min;
    max_ = b.max;
    initialized_ = true;
    return;
  }
  if (config_.kind == ObserverKind::minmax) {
    min_ = std::min(min_, static_cast<double>(b.min));
    max_ = std::max(max_, static_cast<double>(b.max));
  } else {
    const double d = config_.ema_decay;
    min_ = d * min_ + (1.0 - d) * b.min;
    max_ = d * max_ + (1.0 - d) * b.max;
  }
}

void Observer::set(float min, float max) {
  QATC_CHECK(std::isfinite(min));
  QATC_CHECK(std::isfinite(max));
  QATC_CHECK_LE(min, max);
  min_ = min;
  max_ = max;
  initialized_ = true;
}

void Observer::save(ByteWriter& w) const {
  w.put<uint8_t>(initialized_ ? 1 : 0);
  w.put<double>(min_);
  w.put<double>(max_);
}

void Observer::load(ByteReader& r) {
  const uint8_t flag = r.get<uint8_t>();
  const double mn = r.get<double>(), mx = r.get<double>();
  if (flag > 1) r.corrupt("observer flag is not 0 or 1");
  if (!std::isfinite(mn) || !std::isfinite(mx) || mn > mx) r.corrupt("observer range is invalid");
  initialized_ = flag == 1;
  min_ = mn;
  max_ = mx;
}

}  // namespace qatc::quant
