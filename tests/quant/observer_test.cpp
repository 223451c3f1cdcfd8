// Tests for the activation range observers: EMA and minmax arithmetic by hand, both inits,
// skipped batches, set(), and the save/load round trip.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/bytes.h"
#include "core/error.h"
#include "quant/observer.h"

using namespace qatc;
using namespace qatc::quant;

namespace {

// Batch ranges: [-1, 2], [-3, 4], [0.5, 1].
const std::vector<std::vector<float>> kBatches = {{-1.0f, 0.5f, 2.0f}, {4.0f, -3.0f, 1.0f}, {0.5f, 1.0f}};

void feed(Observer& o, size_t i) {
  o.update(kBatches[i].data(), static_cast<int64_t>(kBatches[i].size()));
}

ObserverConfig config(ObserverKind kind, ObserverInit init, double decay = 0.9) {
  ObserverConfig c;
  c.kind = kind;
  c.init = init;
  c.ema_decay = decay;
  return c;
}

}  // namespace

TEST_CASE("observer: defaults are EMA, decay 0.999, first batch init") {
  const ObserverConfig c;
  CHECK(c.kind == ObserverKind::ema_minmax);
  CHECK(c.ema_decay == 0.999);
  CHECK(c.init == ObserverInit::first_batch);
  CHECK(c.init_min == -6.0f);
  CHECK(c.init_max == 6.0f);
}

TEST_CASE("observer: EMA with first-batch init over three batches by hand") {
  Observer o(config(ObserverKind::ema_minmax, ObserverInit::first_batch));
  CHECK_FALSE(o.initialized());
  feed(o, 0);
  CHECK(o.initialized());
  CHECK(o.min() == -1.0f);
  CHECK(o.max() == 2.0f);
  feed(o, 1);  // 0.9 * -1 + 0.1 * -3 = -1.2;  0.9 * 2 + 0.1 * 4 = 2.2
  CHECK(o.min() == doctest::Approx(-1.2).epsilon(1e-7));
  CHECK(o.max() == doctest::Approx(2.2).epsilon(1e-7));
  feed(o, 2);  // 0.9 * -1.2 + 0.1 * 0.5 = -1.03;  0.9 * 2.2 + 0.1 * 1 = 2.08
  CHECK(o.min() == doctest::Approx(-1.03).epsilon(1e-7));
  CHECK(o.max() == doctest::Approx(2.08).epsilon(1e-7));
}

TEST_CASE("observer: EMA with fixed init starts from the configured range") {
  Observer o(config(ObserverKind::ema_minmax, ObserverInit::fixed));
  CHECK(o.initialized());
  CHECK(o.min() == -6.0f);
  CHECK(o.max() == 6.0f);
  feed(o, 0);  // -5.4 - 0.1 = -5.5;  5.4 + 0.2 = 5.6
  CHECK(o.min() == doctest::Approx(-5.5).epsilon(1e-7));
  CHECK(o.max() == doctest::Approx(5.6).epsilon(1e-7));
  feed(o, 1);  // -4.95 - 0.3 = -5.25;  5.04 + 0.4 = 5.44
  CHECK(o.min() == doctest::Approx(-5.25).epsilon(1e-7));
  CHECK(o.max() == doctest::Approx(5.44).epsilon(1e-7));
  feed(o, 2);  // -4.725 + 0.05 = -4.675;  4.896 + 0.1 = 4.996
  CHECK(o.min() == doctest::Approx(-4.675).epsilon(1e-7));
  CHECK(o.max() == doctest::Approx(4.996).epsilon(1e-7));
}

TEST_CASE("observer: minmax keeps the running extremes") {
  Observer o(config(ObserverKind::minmax, ObserverInit::first_batch));
  feed(o, 0);
  CHECK(o.min() == -1.0f);
  CHECK(o.max() == 2.0f);
  feed(o, 1);
  CHECK(o.min() == -3.0f);
  CHECK(o.max() == 4.0f);
  feed(o, 2);  // a narrower batch never shrinks the range
  CHECK(o.min() == -3.0f);
  CHECK(o.max() == 4.0f);

  Observer f(config(ObserverKind::minmax, ObserverInit::fixed));
  for (size_t i = 0; i < 3; ++i) feed(f, i);
  CHECK(f.min() == -6.0f);
  CHECK(f.max() == 6.0f);
  const float wide[2] = {-7.0f, 8.0f};
  f.update(wide, 2);
  CHECK(f.min() == -7.0f);
  CHECK(f.max() == 8.0f);
}

TEST_CASE("observer: empty and non-finite batches change nothing") {
  Observer o(config(ObserverKind::ema_minmax, ObserverInit::first_batch));
  const float bad[3] = {std::nanf(""), std::numeric_limits<float>::infinity(), std::nanf("")};
  o.update(bad, 0);
  o.update(bad, 3);
  CHECK_FALSE(o.initialized());
  feed(o, 0);
  o.update(bad, 3);
  CHECK(o.min() == -1.0f);
  CHECK(o.max() == 2.0f);
  // Non-finite values inside a batch are skipped, the rest counts.
  const float mixed[3] = {std::nanf(""), -3.0f, 4.0f};
  o.update(mixed, 3);
  CHECK(o.min() == doctest::Approx(-1.2).epsilon(1e-7));
  CHECK(o.max() == doctest::Approx(2.2).epsilon(1e-7));
}

TEST_CASE("observer: set overrides the range and marks it initialized") {
  Observer o(config(ObserverKind::ema_minmax, ObserverInit::first_batch));
  o.set(-0.5f, 3.25f);
  CHECK(o.initialized());
  CHECK(o.min() == -0.5f);
  CHECK(o.max() == 3.25f);
  feed(o, 1);  // EMA continues from the set range
  CHECK(o.min() == doctest::Approx(0.9 * -0.5 + 0.1 * -3).epsilon(1e-7));
  CHECK_THROWS_AS(o.set(2.0f, 1.0f), qatc::InternalError);
}

TEST_CASE("observer: bad configuration is a user error") {
  CHECK_THROWS_AS(Observer(config(ObserverKind::ema_minmax, ObserverInit::first_batch, 1.5)), qatc::Error);
  CHECK_THROWS_AS(Observer(config(ObserverKind::ema_minmax, ObserverInit::first_batch, -0.1)), qatc::Error);
  ObserverConfig c = config(ObserverKind::minmax, ObserverInit::fixed);
  c.init_min = 2.0f;
  c.init_max = 1.0f;
  CHECK_THROWS_AS(Observer{c}, qatc::Error);
}

TEST_CASE("observer: save and load round trip exactly") {
  Observer a(config(ObserverKind::ema_minmax, ObserverInit::first_batch));
  for (size_t i = 0; i < 3; ++i) feed(a, i);
  Observer fresh(config(ObserverKind::ema_minmax, ObserverInit::first_batch));
  ByteWriter w;
  a.save(w);
  fresh.save(w);
  const std::string bytes = w.take();
  ByteReader r(bytes, "test.ckpt");
  Observer b(config(ObserverKind::ema_minmax, ObserverInit::first_batch));
  Observer c(config(ObserverKind::ema_minmax, ObserverInit::fixed));
  b.load(r);
  c.load(r);
  CHECK(r.remaining() == 0);
  CHECK(b.initialized());
  CHECK(b.min() == a.min());
  CHECK(b.max() == a.max());
  CHECK_FALSE(c.initialized());
  // The resumed observer continues exactly as the original.
  feed(a, 1);
  feed(b, 1);
  CHECK(b.min() == a.min());
  CHECK(b.max() == a.max());

  // Truncated and corrupted data are user errors naming the file.
  ByteReader shortr(std::string_view(bytes).substr(0, 10), "test.ckpt");
  CHECK_THROWS_AS(b.load(shortr), qatc::Error);
  ByteWriter bad;
  bad.put<uint8_t>(1);
  bad.put<double>(5.0);
  bad.put<double>(-5.0);
  const std::string bad_bytes = bad.take();
  ByteReader badr(bad_bytes, "test.ckpt");
  CHECK_THROWS_WITH_AS(b.load(badr), doctest::Contains("test.ckpt"), qatc::Error);
}
