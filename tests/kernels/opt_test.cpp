// The optimized int8 kernels (qatc::opt) against the reference kernels (the oracle), bit for
// bit, on every instruction set this CPU supports and with 1 and 2 threads. Inputs sit right
// before an inaccessible page and outputs right before a guard of sentinel bytes, so an
// over-read faults and an over-write is seen. The cases cover the corners of the GEMM and
// vector code: channel counts around the vector widths and panel sizes, every padding, K
// split into blocks, zero points -128 and 127, multipliers from 1e-6 to 10 times the natural
// one (and some >= 1/2, whose shift is a saturating left shift), narrow clamps, no bias.
#include <doctest/doctest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "core/rng.h"
#include "core/threads.h"
#include "kernels/fixed_point.h"
#include "kernels/opt/isa.h"
#include "kernels/opt/kernels.h"
#include "kernels/quantize_float.h"
#include "kernels/params.h"
#include "kernels/ref/kernels.h"
#include "kernels/shapes.h"
#include "kernels/testutil.h"

using namespace qatc;
using namespace qatc::kernels;
using namespace qatc::test;

namespace {

// n bytes ending exactly at an inaccessible page: any read past the end faults.
class GuardedBytes {
 public:
  explicit GuardedBytes(size_t n) : n_(n) {
    const auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    map_size_ = (n + page - 1) / page * page + page;
    base_ = static_cast<char*>(mmap(nullptr, map_size_, PROT_READ | PROT_WRITE,
                                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    REQUIRE(base_ != MAP_FAILED);
    REQUIRE(mprotect(base_ + map_size_ - page, page, PROT_NONE) == 0);
    data_ = base_ + map_size_ - page - n;
  }
  ~GuardedBytes() { munmap(base_, map_size_); }
  GuardedBytes(const GuardedBytes&) = delete;
  GuardedBytes& operator=(const GuardedBytes&) = delete;
  template <typename T>
  T* as() {
    return reinterpret_cast<T*>(data_);
  }

 private:
  size_t n_, map_size_;
  char* base_;
  char* data_;
};

// A copy of v in guarded memory.
template <typename T>
class Guarded {
 public:
  explicit Guarded(const std::vector<T>& v) : mem_(v.size() * sizeof(T)) {
    if (!v.empty()) std::memcpy(mem_.as<T>(), v.data(), v.size() * sizeof(T));
  }
  const T* data() { return mem_.as<T>(); }

 private:
  GuardedBytes mem_;
};

// Runs fn(isa, threads) for every supported instruction set with 1 and 2 threads, restoring
// the active ISA and the thread count afterwards.
// Every ISA on 1 and 2 threads, with every shape split across the threads (small layers
// normally run on one: opt::set_min_parallel_macs).
void for_each_path(const std::function<void(opt::Isa, int)>& fn) {
  const opt::Isa isa0 = opt::active_isa();
  const int threads0 = num_threads();
  opt::set_min_parallel_macs(0);
  for (opt::Isa isa : opt::supported_isas()) {
    opt::set_isa(isa);
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      fn(isa, threads);
    }
  }
  opt::set_min_parallel_macs(opt::kDefaultMinParallelMacs);
  opt::set_isa(isa0);
  set_num_threads(threads0);
}

constexpr size_t kGuard = 64;
constexpr int8_t kSentinel = 0x5A;

// Runs `run` into a fresh output of want.size() bytes on every path and checks it equals
// want byte for byte and that the guard bytes after it are untouched.
void expect_ref(const std::vector<int8_t>& want, const std::string& what,
                const std::function<void(int8_t*)>& run) {
  for_each_path([&](opt::Isa isa, int threads) {
    std::vector<int8_t> got(want.size() + kGuard, kSentinel);
    run(got.data());
    size_t diffs = 0, first = 0;
    for (size_t i = 0; i < want.size(); ++i)
      if (got[i] != want[i] && diffs++ == 0) first = i;
    bool guard_ok = true;
    for (size_t i = want.size(); i < got.size(); ++i) guard_ok = guard_ok && got[i] == kSentinel;
    INFO(what << " [" << opt::to_string(isa) << ", " << threads << " threads]: " << diffs
              << " of " << want.size() << " differ"
              << (diffs ? fmt::format(", first at {}: got {} want {}", first, int{got[first]},
                                      int{want[first]})
                        : std::string()));
    CHECK(diffs == 0);
    CHECK(guard_ok);
  });
}

int32_t pick_zero_point(Rng& rng) {
  switch (rng.below(4)) {
    case 0: return -128;
    case 1: return 127;
    default: return uniform_int(rng, -128, 127);
  }
}

// Output clamp: the int8 range, a fused ReLU at the zero point, or a random narrower range.
Clamp pick_clamp(Rng& rng, int32_t zp_out) {
  switch (rng.below(3)) {
    case 0: return {-128, 127};
    case 1: return {zp_out, 127};
    default: {
      const int32_t lo = uniform_int(rng, -128, 120);
      return {lo, uniform_int(rng, lo, 127)};
    }
  }
}

// The per-channel requantization of a layer with reduction depth `depth`. Multipliers (the
// real s_in * s_w / s_out of each channel) by mode:
//   natural:   the one that maps a typical accumulator to ~64, times a factor spread
//              log-uniformly over [1e-6, 10] (right shifts from ~2 to ~40: the vector code's
//              one-rounding fast path);
//   near_half: log-uniform in [0.1, 0.9] (right shifts 0 to 3: the two-rounding path);
//   large:     log-uniform in [1/2, 1024] (left shifts, saturation);
//   any:       one of the three at random (60/20/20).
// In every mode one channel in 16 has multiplier 0 ({0, 0}).
enum class Mult { natural, near_half, large, any };

struct LayerQuant {
  int32_t zp_in, zp_out;
  ChannelMultipliers cm;
  std::vector<int32_t> bias;
  bool has_bias;
  Clamp clamp;
  const int32_t* bias_ptr() const { return has_bias ? bias.data() : nullptr; }
};

LayerQuant random_layer_quant(Rng& rng, int64_t channels, int64_t depth, Mult mode = Mult::any) {
  if (mode == Mult::any) {
    const uint32_t u = rng.below(10);
    mode = u < 6 ? Mult::natural : u < 8 ? Mult::near_half : Mult::large;
  }
  LayerQuant q;
  q.zp_in = pick_zero_point(rng);
  q.zp_out = pick_zero_point(rng);
  const double natural = 64.0 / (74.0 * 74.0 * std::sqrt(static_cast<double>(depth)) + 74.0 * 128.0);
  const auto log_uniform = [&](double lo, double hi) { return std::exp(uniform_real(rng, std::log(lo), std::log(hi))); };
  std::vector<double> s_w;
  for (int64_t k = 0; k < channels; ++k) {
    double m = mode == Mult::natural     ? natural * log_uniform(1e-6, 10.0)
               : mode == Mult::near_half ? log_uniform(0.1, 0.9)
                                         : log_uniform(0.5, 1024.0);
    if (rng.below(16) == 0) m = 1e-12;  // rounds to multiplier 0
    s_w.push_back(m);
  }
  q.cm = make_channel_multipliers(1.0, s_w, 1.0);
  q.has_bias = rng.below(4) != 0;
  // Within kernels::check's bound depth * 255 * 128 + max |bias| <= INT32_MAX.
  const int64_t room = std::numeric_limits<int32_t>::max() - depth * 255 * 128;
  const auto range = static_cast<int32_t>(std::min<int64_t>(room, rng.below(2) ? 1 << 16 : 1 << 26));
  for (int64_t k = 0; k < channels; ++k) q.bias.push_back(uniform_int(rng, -range, range));
  q.clamp = pick_clamp(rng, q.zp_out);
  return q;
}

// ---------------------------------------------------------------------------------------
// Convolution geometry.

struct ConvGeom {
  int64_t n, h, w, c, oc, kh, kw, sh, sw, pt, pl, oh, ow;
  std::string describe() const {
    return fmt::format("n{} {}x{}x{} -> oc{} k{}x{} s{}x{} pad {}/{} out {}x{}", n, h, w, c, oc,
                       kh, kw, sh, sw, pt, pl, oh, ow);
  }
};

ConvGeom from_shape(const ConvShape& s, int64_t oc) {
  const ConvGeometry g = geometry(s);
  return {s.n, s.h, s.w, s.c, oc, s.kh, s.kw, s.stride_h, s.stride_w, g.pad_top, g.pad_left, g.oh, g.ow};
}

// Output size along one axis for padding `pad` before: 'valid'-like (no padding after) when
// possible, else the largest (last window starting inside the input).
int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t pad, bool same) {
  const int64_t largest = (in - 1 + pad) / s + 1;
  if (same) return std::min(largest, (in + s - 1) / s);
  return in + pad >= k ? std::min(largest, (in + pad - k) / s + 1) : 1;
}

// Conv shapes of the opt tests (beyond shapes.h's): channel counts, paddings, kernels, K
// blocks, ResNet and MobileNet corners.
std::vector<ConvGeom> opt_conv_geoms() {
  std::vector<ConvGeom> v;
  const auto add = [&](int64_t n, int64_t h, int64_t w, int64_t c, int64_t oc, int64_t kh,
                       int64_t kw, int64_t s, int64_t pad, bool same) {
    const int64_t pt = std::min(pad, kh - 1), pl = std::min(pad, kw - 1);
    v.push_back({n, h, w, c, oc, kh, kw, s, s, pt, pl, out_size(h, kh, s, pt, same),
                 out_size(w, kw, s, pl, same)});
  };
  for (int64_t c = 1; c <= 10; ++c) add(1, 5, 6, c, 11 - c, 3, 3, 1, 1, true);
  for (int64_t c : {13, 31, 61}) add(1, 6, 5, c, c, 3, 3, 1, 1, true);
  for (int64_t c : {15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129}) {
    add(1, 4, 5, c, 24, 1, 1, 1, 0, false);  // 1x1 contiguous rows, c % 4 in 0..3
    add(1, 4, 4, 8, c, 1, 1, 1, 0, false);   // output channel tails of every width
    add(1, 5, 5, c, c, 3, 3, 2, 1, true);
  }
  add(1, 3, 4, 1000, 3, 1, 1, 1, 0, false);  // deep and narrow
  add(1, 3, 3, 1000, 3, 3, 3, 1, 1, true);
  add(1, 9, 8, 3, 64, 3, 3, 1, 1, true);     // narrow and wide
  add(2, 7, 9, 3, 64, 3, 3, 2, 1, true);
  for (int64_t k : {1, 3, 5})
    for (int64_t s : {1, 2})
      for (int64_t pad = 0; pad < std::min<int64_t>(k, 3); ++pad)
        for (bool same : {true, false}) add(1, 9, 7, 5, 7, k, k, s, pad, same);
  add(1, 30, 30, 3, 64, 7, 7, 2, 3, true);   // ResNet stem 7x7 stride 2
  add(1, 29, 31, 3, 20, 7, 7, 2, 2, false);
  // kh != kw.
  v.push_back({1, 8, 9, 6, 10, 1, 7, 1, 1, 0, 3, 8, 9});
  v.push_back({1, 9, 8, 6, 10, 7, 1, 1, 1, 3, 0, 9, 8});
  v.push_back({3, 7, 6, 5, 9, 3, 5, 2, 1, 1, 2, 4, 6});
  v.push_back({2, 6, 7, 4, 5, 5, 3, 1, 2, 2, 0, 6, 3});
  // Batch 3, many rows (several row blocks, strips of 6 and 5), 1x1 stride 2 (shortcut).
  add(3, 12, 11, 16, 40, 3, 3, 1, 1, true);
  add(3, 14, 14, 24, 48, 1, 1, 1, 0, false);
  add(1, 14, 14, 32, 70, 1, 1, 2, 0, false);
  add(1, 7, 7, 96, 80, 1, 1, 1, 0, false);   // 49 rows
  // K in several blocks: 3x3x64 = 576, 3x3x160 = 1440, 1x1x1100.
  add(1, 8, 8, 64, 64, 3, 3, 1, 1, true);
  add(1, 6, 6, 160, 48, 3, 3, 1, 1, true);
  add(1, 5, 4, 1100, 33, 1, 1, 1, 0, false);
  // Kernel rows of at most 12 bytes (kw * c <= 12): the avx512_vnni GEMM's row-group form
  // (PackedConv::row_groups), 1 to 3 groups of 4 bytes per kernel row, widths 1 to 30 (strips
  // of every size, rows ending anywhere), every stride and padding, several images (output
  // rows across the tasks' row blocks).
  for (int64_t c : {1, 2, 3, 4, 5, 12})
    for (int64_t kw = 1; kw * c <= 12; kw += c == 1 ? 3 : 1)
      for (int64_t kh : {2, 3, 5})
        for (int64_t s : {1, 2})
          for (int64_t pad : {0, 1, 2}) add(2, kh + 3, 1 + (c * 7 + kw * 5 + kh * 3 + s + pad) % 30, c, 33, kh, kw, s, pad, pad != 1);
  add(32, 28, 28, 1, 32, 3, 3, 1, 1, true);  // the MNIST CNNs' first conv at batch 32
  add(3, 17, 30, 1, 70, 5, 4, 2, 2, true);
  add(2, 33, 31, 3, 32, 3, 3, 2, 1, true);   // MobileNets' first conv, stride 2
  return v;
}

std::vector<int8_t> random_bytes(Rng& rng, int64_t n) { return random_int8(rng, n, -128, 127); }

// A random conv geometry: n up to 3, h and w up to max_h and max_w, c and oc up to max_c and
// max_oc, kernels up to max_k (and at most the input + 2), strides up to max_s, any padding
// before the input, and any output size whose last window starts inside the input
// (kernels::check's rule).
ConvGeom random_geom(Rng& rng, uint32_t max_h, uint32_t max_w, uint32_t max_c, uint32_t max_oc, uint32_t max_k,
                     uint32_t max_s) {
  ConvGeom g{};
  g.n = 1 + rng.below(3);
  g.h = 1 + rng.below(max_h);
  g.w = 1 + rng.below(max_w);
  g.c = 1 + rng.below(max_c);
  g.oc = 1 + rng.below(max_oc);
  g.kh = 1 + rng.below(std::min<uint32_t>(max_k, static_cast<uint32_t>(g.h + 2)));
  g.kw = 1 + rng.below(std::min<uint32_t>(max_k, static_cast<uint32_t>(g.w + 2)));
  g.sh = 1 + rng.below(max_s);
  g.sw = 1 + rng.below(max_s);
  g.pt = rng.below(static_cast<uint32_t>(g.kh));
  g.pl = rng.below(static_cast<uint32_t>(g.kw));
  g.oh = 1 + rng.below(static_cast<uint32_t>((g.h - 1 + g.pt) / g.sh + 1));
  g.ow = 1 + rng.below(static_cast<uint32_t>((g.w - 1 + g.pl) / g.sw + 1));
  return g;
}

void check_conv(Rng& rng, const ConvGeom& g, Mult mult = Mult::any) {
  const auto input = random_bytes(rng, g.n * g.h * g.w * g.c);
  const auto weights = random_bytes(rng, g.oc * g.kh * g.kw * g.c);
  const LayerQuant q = random_layer_quant(rng, g.oc, g.kh * g.kw * g.c, mult);
  const Conv2DParams p{g.n, g.h, g.w, g.c, g.kh, g.kw, g.oc, g.sh, g.sw, g.pt, g.pl, g.oh, g.ow,
                       q.zp_in, q.zp_out, weights.data(), q.bias_ptr(), q.cm.multiplier.data(),
                       q.cm.shift.data(), q.clamp.qmin, q.clamp.qmax};
  std::vector<int8_t> want(static_cast<size_t>(g.n * g.oh * g.ow * g.oc));
  ref::conv2d_qs8(want.data(), input.data(), p);
  Guarded<int8_t> in(input);
  expect_ref(want, "conv2d " + g.describe(),
             [&](int8_t* out) { opt::conv2d_qs8(out, in.data(), p); });
}

void check_depthwise(Rng& rng, const ConvGeom& g, int64_t m) {
  const int64_t oc = g.c * m;
  const auto input = random_bytes(rng, g.n * g.h * g.w * g.c);
  const auto weights = random_bytes(rng, g.kh * g.kw * oc);
  const LayerQuant q = random_layer_quant(rng, oc, g.kh * g.kw);
  const DepthwiseConv2DParams p{g.n, g.h, g.w, g.c, g.kh, g.kw, m, g.sh, g.sw, g.pt, g.pl, g.oh,
                                g.ow, q.zp_in, q.zp_out, weights.data(), q.bias_ptr(),
                                q.cm.multiplier.data(), q.cm.shift.data(), q.clamp.qmin,
                                q.clamp.qmax};
  std::vector<int8_t> want(static_cast<size_t>(g.n * g.oh * g.ow * oc));
  ref::depthwise_conv2d_qs8(want.data(), input.data(), p);
  Guarded<int8_t> in(input);
  expect_ref(want, fmt::format("depthwise dm{} {}", m, g.describe()),
             [&](int8_t* out) { opt::depthwise_conv2d_qs8(out, in.data(), p); });
}

void check_dense(Rng& rng, int64_t n, int64_t in_f, int64_t out_f, Mult mult = Mult::any) {
  const auto input = random_bytes(rng, n * in_f);
  const auto weights = random_bytes(rng, out_f * in_f);
  const LayerQuant q = random_layer_quant(rng, out_f, in_f, mult);
  const DenseParams p{n, in_f, out_f, q.zp_in, q.zp_out, weights.data(), q.bias_ptr(),
                      q.cm.multiplier.data(), q.cm.shift.data(), q.clamp.qmin, q.clamp.qmax};
  std::vector<int8_t> want(static_cast<size_t>(n * out_f));
  ref::dense_qs8(want.data(), input.data(), p);
  Guarded<int8_t> in(input);
  expect_ref(want, fmt::format("dense n{} {} -> {}", n, in_f, out_f),
             [&](int8_t* out) { opt::dense_qs8(out, in.data(), p); });
}

}  // namespace

// ---------------------------------------------------------------------------------------

TEST_CASE("opt isa names, parsing and selection") {
  for (opt::Isa isa : {opt::Isa::portable, opt::Isa::avx2, opt::Isa::avx_vnni, opt::Isa::avx512_vnni, opt::Isa::amx})
    CHECK(opt::parse_isa(opt::to_string(isa)) == isa);
  CHECK_THROWS_AS(opt::parse_isa("sse9"), Error);
  CHECK(opt::isa_supported(opt::Isa::portable));
  CHECK(opt::isa_supported(opt::detect_isa()));
  const auto supported = opt::supported_isas();
  CHECK(supported.front() == opt::Isa::portable);
  CHECK(supported.back() == opt::detect_isa());
  const opt::Isa isa0 = opt::active_isa();
  for (opt::Isa isa : supported) {
    opt::set_isa(isa);
    CHECK(opt::active_isa() == isa);
  }
  for (opt::Isa isa : {opt::Isa::avx2, opt::Isa::avx_vnni, opt::Isa::avx512_vnni, opt::Isa::amx})
    if (!opt::isa_supported(isa)) {
      CHECK_THROWS_AS(opt::set_isa(isa), Error);
      CHECK_THROWS_AS(opt::mbqm_for_test(isa, nullptr, nullptr, nullptr, nullptr, 0), Error);
    }
  opt::set_isa(isa0);
  MESSAGE("int8 kernel paths on this CPU: " << [&] {
    std::string s;
    for (opt::Isa isa : supported) s += std::string(s.empty() ? "" : ", ") + opt::to_string(isa);
    return s;
  }());
}

TEST_CASE("opt vector mbqm equals fixed::multiply_by_quantized_multiplier on corner cases") {
  Rng rng(401);
  std::vector<int32_t> xs = {std::numeric_limits<int32_t>::min(),
                             std::numeric_limits<int32_t>::min() + 1,
                             std::numeric_limits<int32_t>::max(),
                             std::numeric_limits<int32_t>::max() - 1,
                             0, 1, -1, 2, -2, 3, -3};
  for (int e = 1; e < 31; ++e) {  // around powers of two: rounding ties of every shift
    const int32_t p = int32_t{1} << e;
    for (int32_t d : {-1, 0, 1}) {
      xs.push_back(p + d);
      xs.push_back(-p - d);
      xs.push_back(p + p / 2 + d);
      xs.push_back(-(p + p / 2) - d);
    }
  }
  for (int i = 0; i < 200; ++i) xs.push_back(static_cast<int32_t>(rng.next()));
  for (int i = 0; i < 100; ++i) xs.push_back(uniform_int(rng, -100000, 100000));
  std::vector<int32_t> multipliers = {0, int32_t{1} << 30, (int32_t{1} << 30) + 1,
                                      std::numeric_limits<int32_t>::max(),
                                      std::numeric_limits<int32_t>::max() - 1, 1518500250};
  for (int i = 0; i < 4; ++i) multipliers.push_back((int32_t{1} << 30) + static_cast<int32_t>(rng.below(1u << 30)));
  std::vector<int32_t> x, m, s, want;
  for (int32_t mult : multipliers)
    for (int32_t shift = -31; shift <= 30; ++shift) {
      if (mult == 0 && shift != 0) continue;  // {0, 0} is the only zero multiplier
      for (int32_t v : xs) {
        x.push_back(v);
        m.push_back(mult);
        s.push_back(shift);
        want.push_back(fixed::multiply_by_quantized_multiplier(v, mult, shift));
      }
    }
  // Lanes of one vector mixing left and right shifts, and all right.
  for (opt::Isa isa : opt::supported_isas()) {
    std::vector<int32_t> got(want.size(), 12345);
    opt::mbqm_for_test(isa, got.data(), x.data(), m.data(), s.data(), static_cast<int64_t>(x.size()));
    size_t diffs = 0, first = 0;
    for (size_t i = 0; i < want.size(); ++i)
      if (got[i] != want[i] && diffs++ == 0) first = i;
    INFO(opt::to_string(isa) << ": " << diffs << " of " << want.size() << " differ"
                             << (diffs ? fmt::format(" (first: x {} m {} shift {}: got {} want {})",
                                                     x[first], m[first], s[first], got[first], want[first])
                                       : std::string()));
    CHECK(diffs == 0);
    // Shuffled, so vectors mix shifts (left and right) and multipliers.
    std::vector<size_t> perm(x.size());
    for (size_t i = 0; i < perm.size(); ++i) perm[i] = i;
    for (size_t i = perm.size() - 1; i > 0; --i) std::swap(perm[i], perm[rng.below(static_cast<uint32_t>(i + 1))]);
    std::vector<int32_t> px, pm, ps;
    for (size_t i : perm) px.push_back(x[i]), pm.push_back(m[i]), ps.push_back(s[i]);
    opt::mbqm_for_test(isa, got.data(), px.data(), pm.data(), ps.data(), static_cast<int64_t>(x.size()));
    diffs = 0;
    for (size_t i = 0; i < perm.size(); ++i) diffs += got[i] != want[perm[i]] ? 1 : 0;
    CHECK(diffs == 0);
  }
}

TEST_CASE("opt conv2d equals ref on the shared curated shapes") {
  Rng rng(403);
  for (const ConvShape& s : conv_shapes()) check_conv(rng, from_shape(s, s.oc));
}

TEST_CASE("opt conv2d equals ref on channel, padding, stride and kernel corners") {
  Rng rng(405);
  for (const ConvGeom& g : opt_conv_geoms()) check_conv(rng, g);
}

TEST_CASE("opt conv2d and depthwise equal ref on random geometries") {
  Rng rng(406);
  for (int i = 0; i < 150; ++i) {
    const ConvGeom g = random_geom(rng, 12, 12, i % 5 == 0 ? 300 : 40, i % 7 == 0 ? 200 : 80, 6, 3);
    check_conv(rng, g);
    check_depthwise(rng, g, 1 + rng.below(3));
  }
}

TEST_CASE("opt conv2d and dense equal ref in every multiplier regime") {
  // Each regime alone (a layer mixing them takes the two-rounding path for all channels).
  Rng rng(407);
  for (Mult m : {Mult::natural, Mult::near_half, Mult::large})
    for (int i = 0; i < 3; ++i) {
      check_conv(rng, {1, 6, 6, 3, 20, 3, 3, 1, 1, 1, 1, 6, 6}, m);
      check_conv(rng, {1, 4, 4, 64, 70, 1, 1, 1, 1, 0, 0, 4, 4}, m);
      check_conv(rng, {2, 5, 7, 9, 130, 3, 3, 2, 1, 1, 1, 3, 7}, m);
      check_dense(rng, 2, 1, 17, m);
      check_dense(rng, 3, 130, 33, m);
    }
}

TEST_CASE("opt conv2d equals ref at the accumulator limits") {
  // Every input and weight at an extreme, zero points at the ends, depth 4608 (3x3x512) with
  // the largest bias kernels::check allows: the folded biases and u8 products at their bounds.
  for (const int8_t x : {int8_t{-128}, int8_t{127}})
    for (const int8_t wv : {int8_t{-128}, int8_t{127}})
      for (const int32_t zp : {-128, 127}) {
        const int64_t c = 512, oc = 20;
        const std::vector<int8_t> input(static_cast<size_t>(3 * 3 * c), x);
        const std::vector<int8_t> weights(static_cast<size_t>(oc * 9 * c), wv);
        const int32_t max_bias = static_cast<int32_t>(std::numeric_limits<int32_t>::max() - 9 * c * 255 * 128);
        std::vector<int32_t> bias(static_cast<size_t>(oc));
        for (int64_t k = 0; k < oc; ++k) bias[static_cast<size_t>(k)] = k % 2 ? max_bias : -max_bias;
        std::vector<double> s_w(static_cast<size_t>(oc));
        for (int64_t k = 0; k < oc; ++k) s_w[static_cast<size_t>(k)] = std::ldexp(1.0, -static_cast<int>(k) - 14);
        const ChannelMultipliers cm = make_channel_multipliers(1.0, s_w, 1.0);
        const Conv2DParams p{1, 3, 3, c, 3, 3, oc, 1, 1, 1, 1, 3, 3, zp, -zp - 1, weights.data(),
                             bias.data(), cm.multiplier.data(), cm.shift.data(), -128, 127};
        std::vector<int8_t> want(static_cast<size_t>(9 * oc));
        ref::conv2d_qs8(want.data(), input.data(), p);
        expect_ref(want, fmt::format("limits x {} w {} zp {}", int{x}, int{wv}, zp),
                   [&](int8_t* out) { opt::conv2d_qs8(out, input.data(), p); });
      }
}

TEST_CASE("opt conv2d with pre-packed weights: reused, and checked against the params") {
  Rng rng(409);
  const ConvGeom g{2, 9, 9, 20, 37, 3, 3, 2, 2, 1, 1, 5, 5};
  const auto weights = random_bytes(rng, g.oc * 9 * g.c);
  const LayerQuant q = random_layer_quant(rng, g.oc, 9 * g.c);
  Conv2DParams p{g.n, g.h, g.w, g.c, g.kh, g.kw, g.oc, g.sh, g.sw, g.pt, g.pl, g.oh, g.ow,
                 q.zp_in, q.zp_out, weights.data(), q.bias_ptr(), q.cm.multiplier.data(),
                 q.cm.shift.data(), q.clamp.qmin, q.clamp.qmax};
  for (opt::Isa isa : opt::supported_isas()) {
    opt::set_isa(isa);
    const opt::PackedConv packed = opt::pack_conv2d(p);
    CHECK(packed.isa == isa);
    for (int i = 0; i < 3; ++i) {
      const auto input = random_bytes(rng, g.n * g.h * g.w * g.c);
      std::vector<int8_t> want(static_cast<size_t>(g.n * g.oh * g.ow * g.oc)), got(want.size());
      ref::conv2d_qs8(want.data(), input.data(), p);
      opt::conv2d_qs8(got.data(), input.data(), p, packed);
      CHECK(got == want);
    }
    std::vector<int8_t> in(static_cast<size_t>(g.n * g.h * g.w * g.c)), out(static_cast<size_t>(g.n * g.oh * g.ow * g.oc));
    Conv2DParams other = p;
    other.input_zero_point = p.input_zero_point == 0 ? 1 : 0;  // the folded bias would be wrong
    CHECK_THROWS_AS(opt::conv2d_qs8(out.data(), in.data(), other, packed), InternalError);
    const DenseParams d{1, 9 * g.c, g.oc, q.zp_in, q.zp_out, weights.data(), q.bias_ptr(),
                        q.cm.multiplier.data(), q.cm.shift.data(), -128, 127};
    CHECK_THROWS_AS(opt::dense_qs8(out.data(), in.data(), d, packed), InternalError);
  }
  opt::set_isa(opt::detect_isa());
  // The output stage's form: one rounding when every channel's shift is <= -2 (or its
  // multiplier 0), else gemmlowp's two; both are exercised by the regimes above.
  const LayerQuant natural = random_layer_quant(rng, g.oc, 9 * g.c, Mult::natural);
  const LayerQuant near_half = random_layer_quant(rng, g.oc, 9 * g.c, Mult::near_half);
  p.multiplier = natural.cm.multiplier.data();
  p.shift = natural.cm.shift.data();
  CHECK(opt::pack_conv2d(p).fast_requant);
  p.multiplier = near_half.cm.multiplier.data();
  p.shift = near_half.cm.shift.data();
  CHECK(!opt::pack_conv2d(p).fast_requant);
}

TEST_CASE("opt dense equals ref: in_features 1..300, out_features 1..70") {
  Rng rng(411);
  for (int64_t in_f = 1; in_f <= 300; ++in_f) {
    const int64_t out_f = 1 + (in_f * 37) % 70;
    check_dense(rng, 1 + in_f % 3, in_f, out_f);
  }
  for (int64_t out_f = 1; out_f <= 70; ++out_f) check_dense(rng, 1 + out_f % 4, 1 + (out_f * 13) % 300, out_f);
  for (const DenseShape& s : dense_shapes()) check_dense(rng, s.n, s.in_features, s.out_features);
  check_dense(rng, 1, 2048, 1000);  // ResNet-50's classifier
  check_dense(rng, 3, 1000, 3);
  check_dense(rng, 13, 3, 64);
}

TEST_CASE("opt depthwise conv2d equals ref, depth multipliers 1, 2 and 3") {
  Rng rng(413);
  std::vector<ConvGeom> geoms;
  for (const ConvShape& s : conv_shapes()) geoms.push_back(from_shape(s, s.c));
  for (const ConvGeom& g : opt_conv_geoms()) geoms.push_back(g);
  for (int64_t c : {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 13, 31, 61, 15, 16, 17, 32, 33, 63, 64, 65, 127, 128, 129})
    for (int64_t s : {1, 2}) geoms.push_back({1, 7, 8, c, c, 3, 3, s, s, 1, 1, s == 1 ? 7 : 4, s == 1 ? 8 : 4});
  geoms.push_back({1, 20, 21, 32, 32, 3, 3, 1, 1, 1, 1, 20, 21});  // MobileNet-like, interior runs
  geoms.push_back({2, 21, 20, 48, 48, 3, 3, 2, 2, 0, 0, 10, 10});
  geoms.push_back({1, 9, 9, 40, 40, 3, 3, 2, 2, 1, 1, 5, 5});
  for (const ConvGeom& g : geoms)
    for (int64_t m : {1, 2}) check_depthwise(rng, g, m);
  for (size_t i = 0; i < geoms.size(); i += 5) check_depthwise(rng, geoms[i], 3);
}

TEST_CASE("opt add equals ref, in place too") {
  Rng rng(415);
  std::vector<int64_t> sizes = elementwise_sizes();
  for (size_t i = 0; i < sizes.size(); ++i) {
    const int64_t n = sizes[i];
    const auto a = random_bytes(rng, n), b = random_bytes(rng, n);
    const double s1 = uniform_real(rng, 0.001, 0.1), s2 = s1 * std::exp(uniform_real(rng, -4.0, 4.0));
    // Mostly natural output scales; every fourth so small that the output multiplier is >= 1/2.
    const double s_out = i % 4 == 3 ? std::max(s1, s2) * 1e-7 : std::max(s1, s2) * uniform_real(rng, 0.3, 3.0);
    const int32_t zp_out = pick_zero_point(rng);
    const Clamp c = pick_clamp(rng, zp_out);
    const AddParams p = make_add_params(s1, pick_zero_point(rng), s2, pick_zero_point(rng), s_out,
                                        zp_out, c.qmin, c.qmax, n);
    std::vector<int8_t> want(static_cast<size_t>(n));
    ref::add_qs8(want.data(), a.data(), b.data(), p);
    Guarded<int8_t> ga(a), gb(b);
    expect_ref(want, fmt::format("add size {} output shift {}", n, p.output_shift),
               [&](int8_t* out) { opt::add_qs8(out, ga.data(), gb.data(), p); });
    expect_ref(want, fmt::format("add in place size {}", n), [&](int8_t* out) {
      std::memcpy(out, a.data(), a.size());
      opt::add_qs8(out, out, gb.data(), p);
    });
    // By tables (where the path adds by tables; the others take them and compute as above).
    // The tiny output scales put A beyond its bound (|A| < 2^23): no tables, the same result.
    const opt::PackedAdd t = opt::pack_add(p);
    CHECK(t.exact == (i % 4 != 3));
    expect_ref(want, fmt::format("add by tables size {}", n),
               [&](int8_t* out) { opt::add_qs8(out, ga.data(), gb.data(), p, t); });
    expect_ref(want, fmt::format("add by tables in place size {}", n), [&](int8_t* out) {
      std::memcpy(out, b.data(), b.size());
      opt::add_qs8(out, ga.data(), out, p, t);
    });
  }
}

namespace {

// All 65,536 (a, b) byte pairs, a varying fastest.
struct BytePairs {
  std::vector<int8_t> a, b;
  BytePairs() : a(65536), b(65536) {
    for (int i = 0; i < 65536; ++i) {
      a[static_cast<size_t>(i)] = static_cast<int8_t>(i % 256 - 128);
      b[static_cast<size_t>(i)] = static_cast<int8_t>(i / 256 - 128);
    }
  }
};

// The tables' own formula, clamp(floor((A1[a] + A2[b]) / 256), qmin, qmax), on every pair,
// and the three byte planes as the kernels read them.
size_t table_formula_diffs(const opt::PackedAdd& t, const BytePairs& pairs, const std::vector<int8_t>& want) {
  size_t diffs = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const auto u1 = static_cast<uint8_t>(pairs.a[i]), u2 = static_cast<uint8_t>(pairs.b[i]);
    const int64_t sum = int64_t{t.table[0][u1]} + t.table[1][u2];
    const int64_t v = std::clamp<int64_t>(sum >= 0 ? sum / 256 : -((-sum + 255) / 256), t.params.qmin, t.params.qmax);
    diffs += v != want[i];
  }
  for (int k = 0; k < 2; ++k)
    for (int u = 0; u < 256; ++u) {
      const int32_t a = t.table[k][u];
      const auto h = static_cast<int16_t>(t.planes[k][1][u] | (t.planes[k][2][u] << 8));
      diffs += a != 256 * int32_t{h} + t.planes[k][0][u] || std::abs(a) >= (1 << 23);
    }
  return diffs;
}

}  // namespace

TEST_CASE("opt pack_add: the tables give ref add_qs8 on all 65,536 input pairs") {
  // Natural Adds (make_add_params: the converter's, input scales up to e^4 apart, output
  // scales 0.3-3 times the larger): tables always found. Then the corners of the parameters
  // kernels::check accepts: left shifts 0-22, multipliers 0, 2^30 and 2^31 - 1, input shifts
  // down to -31, output shifts up to +3 (a saturating left shift): where tables are found they
  // must be exact (those the search cannot find are reported, and add_qs8 computes them).
  Rng rng(433);
  const BytePairs pairs;
  std::vector<int8_t> want(65536);
  for (int i = 0; i < 120; ++i) {
    const double s1 = uniform_real(rng, 0.001, 0.1), s2 = s1 * std::exp(uniform_real(rng, -4.0, 4.0));
    const int32_t zp_out = pick_zero_point(rng);
    const Clamp c = pick_clamp(rng, zp_out);
    const AddParams p = make_add_params(s1, pick_zero_point(rng), s2, pick_zero_point(rng),
                                        std::max(s1, s2) * uniform_real(rng, 0.3, 3.0), zp_out, c.qmin, c.qmax, 65536);
    const opt::PackedAdd t = opt::pack_add(p);
    INFO("natural Add " << i << ": s2/s1 " << s2 / s1);
    REQUIRE(t.exact);
    ref::add_qs8(want.data(), pairs.a.data(), pairs.b.data(), p);
    CHECK(table_formula_diffs(t, pairs, want) == 0);
    if (i % 8 == 0)
      expect_ref(want, fmt::format("add by tables, all pairs, natural Add {}", i),
                 [&](int8_t* out) { opt::add_qs8(out, pairs.a.data(), pairs.b.data(), p, t); });
  }
  auto multiplier = [&](int pick) {
    if (pick == 0) return int32_t{1} << 30;
    if (pick == 1) return INT32_MAX;
    return static_cast<int32_t>((int64_t{1} << 30) + static_cast<int64_t>(rng.next() % (uint64_t{1} << 30)));
  };
  int found = 0, cases = 0;
  for (int32_t left_shift : {0, 1, 8, 9, 13, 20, 22})
    for (int i = 0; i < 12; ++i, ++cases) {
      AddParams p{};
      p.size = 65536;
      p.left_shift = left_shift;
      p.input1_zero_point = pick_zero_point(rng), p.input2_zero_point = pick_zero_point(rng);
      p.input1_multiplier = multiplier(i % 3), p.input1_shift = -uniform_int(rng, 0, i % 4 == 0 ? 31 : 12);
      p.input2_multiplier = multiplier((i + 1) % 3), p.input2_shift = -uniform_int(rng, 0, i % 4 == 1 ? 31 : 12);
      if (i == 5) p.input2_multiplier = 0, p.input2_shift = 0;
      p.output_multiplier = multiplier(i % 3);
      p.output_shift = i == 7 ? uniform_int(rng, 1, 3) : -left_shift + 1 - uniform_int(rng, 0, 8);
      p.output_zero_point = pick_zero_point(rng);
      const Clamp c = pick_clamp(rng, p.output_zero_point);
      p.qmin = c.qmin, p.qmax = c.qmax;
      const opt::PackedAdd t = opt::pack_add(p);
      if (!t.exact) continue;
      ++found;
      ref::add_qs8(want.data(), pairs.a.data(), pairs.b.data(), p);
      INFO("left shift " << left_shift << " case " << i);
      CHECK(table_formula_diffs(t, pairs, want) == 0);
      if (i % 4 == 2)
        expect_ref(want, fmt::format("add by tables, all pairs, left shift {} case {}", left_shift, i),
                   [&](int8_t* out) { opt::add_qs8(out, pairs.a.data(), pairs.b.data(), p, t); });
    }
  MESSAGE("tables found for " << found << " of " << cases << " corner-case Adds");
  CHECK(found > cases / 2);
}

TEST_CASE("opt conv2d_add equals ref conv2d then ref add, also in place over the other input (amx)") {
  if (!opt::isa_supported(opt::Isa::amx)) {
    MESSAGE("no amx on this CPU: conv2d_add_qs8 not tested");
    return;
  }
  Rng rng(416);
  std::vector<ConvGeom> geoms = opt_conv_geoms();
  for (int i = 0; i < 40; ++i)  // plus random ones, with padding and strides
    geoms.push_back(random_geom(rng, 12, 20, i % 4 == 0 ? 200 : 40, i % 3 == 0 ? 150 : 70, 4, 2));
  const opt::Isa isa0 = opt::active_isa();
  const int threads0 = num_threads();
  opt::set_min_parallel_macs(0);
  opt::set_isa(opt::Isa::amx);
  int fused = 0;
  for (size_t gi = 0; gi < geoms.size(); ++gi) {
    const ConvGeom& g = geoms[gi];
    // The narrow 1x1 expansions run on avx512_vnni, unfused (opt::gemm_isa).
    if (opt::gemm_isa(g.c, g.kh, g.kw, g.oc) != opt::Isa::amx) continue;
    ++fused;
    const auto input = random_bytes(rng, g.n * g.h * g.w * g.c);
    const auto weights = random_bytes(rng, g.oc * g.kh * g.kw * g.c);
    const LayerQuant q = random_layer_quant(rng, g.oc, g.kh * g.kw * g.c);
    const Conv2DParams p{g.n, g.h, g.w, g.c, g.kh, g.kw, g.oc, g.sh, g.sw, g.pt, g.pl, g.oh, g.ow,
                         q.zp_in, q.zp_out, weights.data(), q.bias_ptr(), q.cm.multiplier.data(),
                         q.cm.shift.data(), q.clamp.qmin, q.clamp.qmax};
    const int64_t size = g.n * g.oh * g.ow * g.oc;
    const auto other = random_bytes(rng, size);
    const double s1 = uniform_real(rng, 0.001, 0.1), s2 = s1 * std::exp(uniform_real(rng, -3.0, 3.0));
    const int32_t zp_out = pick_zero_point(rng);
    const Clamp c = pick_clamp(rng, zp_out);
    const AddParams a = make_add_params(s1, pick_zero_point(rng), s2, pick_zero_point(rng),
                                        std::max(s1, s2) * uniform_real(rng, 0.3, 3.0), zp_out, c.qmin, c.qmax, size);
    std::vector<int8_t> conv(static_cast<size_t>(size));
    ref::conv2d_qs8(conv.data(), input.data(), p);
    const bool conv_first = gi % 2 == 0;
    std::vector<int8_t> want(static_cast<size_t>(size));
    if (conv_first) ref::add_qs8(want.data(), conv.data(), other.data(), a);
    else ref::add_qs8(want.data(), other.data(), conv.data(), a);
    const opt::PackedConv w = opt::pack_conv2d(p);
    REQUIRE(opt::supports_conv2d_add(w.isa, a));
    Guarded<int8_t> in(input), oth(other);
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      std::vector<int8_t> got(static_cast<size_t>(size) + kGuard, kSentinel);
      opt::conv2d_add_qs8(got.data(), in.data(), p, w, oth.data(), a, conv_first);
      size_t diffs = 0;
      for (size_t k = 0; k < want.size(); ++k) diffs += got[k] != want[k];
      bool guard_ok = true;
      for (size_t k = want.size(); k < got.size(); ++k) guard_ok = guard_ok && got[k] == kSentinel;
      INFO("conv2d_add " << g.describe() << (conv_first ? " conv first" : " conv second") << ", " << threads
                         << " threads: " << diffs << " differ");
      CHECK(diffs == 0);
      CHECK(guard_ok);
      // In place: the output over the other input (the executor's ResNet shortcuts).
      std::vector<int8_t> io(other);
      io.resize(static_cast<size_t>(size) + kGuard, kSentinel);
      opt::conv2d_add_qs8(io.data(), in.data(), p, w, io.data(), a, conv_first);
      CHECK(std::memcmp(io.data(), want.data(), want.size()) == 0);
    }
  }
  CHECK(fused > 30);
  opt::set_min_parallel_macs(opt::kDefaultMinParallelMacs);
  opt::set_isa(isa0);
  set_num_threads(threads0);
}

TEST_CASE("opt conv2d_add: every pair of conv output and other input, left and input shifts at their bounds (amx)") {
  // The fused Add's own arithmetic (int16 pairs, isa_avx512.cpp AddPairs) on all 65,536
  // (conv output, other) pairs: a 1x1 conv with identity weights and multiplier (mbqm(x,
  // 2^30, 1) = x) passes its input through, and the input and `other` enumerate the pairs.
  // Left shifts at both ends of add_pairs_apply, input shifts from 0 to its bound, zero
  // multipliers, multipliers at 2^30 and 2^31 - 1, both input orders.
  if (!opt::isa_supported(opt::Isa::amx)) {
    MESSAGE("no amx on this CPU: conv2d_add_qs8 not tested");
    return;
  }
  Rng rng(431);
  const int64_t c = 16, pixels = 256 * 256 / c;
  std::vector<int8_t> input(256 * 256), other(256 * 256), weights(static_cast<size_t>(c * c), 0);
  for (int i = 0; i < 256 * 256; ++i) {
    input[static_cast<size_t>(i)] = static_cast<int8_t>(i % 256 - 128);
    other[static_cast<size_t>(i)] = static_cast<int8_t>(i / 256 - 128);
  }
  for (int64_t o = 0; o < c; ++o) weights[static_cast<size_t>(o * c + o)] = 1;
  const std::vector<int32_t> bias(static_cast<size_t>(c), 0), mult(static_cast<size_t>(c), int32_t{1} << 30),
      shift(static_cast<size_t>(c), 1);
  const Conv2DParams p{1, 1, pixels, c, 1, 1, c, 1, 1, 0, 0, 1, pixels, 0, 0, weights.data(), bias.data(),
                       mult.data(), shift.data(), -128, 127};
  const opt::Isa isa0 = opt::active_isa();
  opt::set_isa(opt::Isa::amx);
  const opt::PackedConv w = opt::pack_conv2d(p);
  auto multiplier = [&](int pick) {
    if (pick == 0) return int32_t{1} << 30;
    if (pick == 1) return INT32_MAX;
    return static_cast<int32_t>((int64_t{1} << 30) + static_cast<int64_t>(rng.next() % (uint64_t{1} << 30)));
  };
  int pick = 0;
  for (int32_t left_shift : {9, 13, 20, 22}) {
    // Input shifts -e up to e = 22 - k (add_pairs_apply), k = 31 - left_shift.
    const int32_t e_max = 22 - (31 - left_shift);
    for (int32_t shift1 : {0, -std::min(1, e_max), -std::min(2, e_max), -e_max})
      for (int32_t shift2 : {0, -std::min(1, e_max), -std::min(5, e_max), -e_max, 1}) {  // 1: a zero multiplier (shift 0)
        AddParams a{};
        a.size = 256 * 256;
        a.left_shift = left_shift;
        a.input1_zero_point = pick_zero_point(rng), a.input2_zero_point = pick_zero_point(rng);
        a.input1_multiplier = multiplier(pick++ % 3), a.input1_shift = shift1;
        a.input2_multiplier = multiplier(pick++ % 3), a.input2_shift = shift2;
        if (shift2 == 1) a.input2_multiplier = 0, a.input2_shift = 0;
        a.output_multiplier = multiplier(2), a.output_shift = -left_shift + 1 - static_cast<int32_t>(rng.next() % 4);
        a.output_zero_point = pick_zero_point(rng);
        const Clamp cl = pick_clamp(rng, a.output_zero_point);
        a.qmin = cl.qmin, a.qmax = cl.qmax;
        REQUIRE(opt::supports_conv2d_add(w.isa, a));
        for (const bool conv_first : {true, false}) {
          std::vector<int8_t> want(input.size());
          if (conv_first) ref::add_qs8(want.data(), input.data(), other.data(), a);
          else ref::add_qs8(want.data(), other.data(), input.data(), a);
          // The arithmetic form, then the tables.
          const opt::PackedAdd table = opt::pack_add(a);
          REQUIRE(table.exact);
          for (const opt::PackedAdd* t : {static_cast<const opt::PackedAdd*>(nullptr), &table}) {
            std::vector<int8_t> got(want.size());
            opt::conv2d_add_qs8(got.data(), input.data(), p, w, other.data(), a, conv_first, t);
            size_t diffs = 0;
            for (size_t k = 0; k < want.size(); ++k) diffs += got[k] != want[k];
            INFO("conv2d_add left_shift " << left_shift << " shifts " << shift1 << " " << shift2
                                          << (conv_first ? "" : ", conv second") << (t ? ", by tables" : "") << ": "
                                          << diffs << " differ");
            CHECK(diffs == 0);
          }
        }
        // One step beyond the bound the arithmetic form does not apply (the Add runs unfused);
        // by tables it does.
        AddParams beyond = a;
        beyond.input1_shift = -e_max - 1;
        CHECK_FALSE(opt::supports_conv2d_add(w.isa, beyond));
        const opt::PackedAdd beyond_table = opt::pack_add(beyond);
        REQUIRE(beyond_table.exact);
        CHECK(opt::supports_conv2d_add(w.isa, beyond, &beyond_table) == opt::add_table_used(w.isa));
        if (opt::add_table_used(w.isa)) {
          std::vector<int8_t> want(input.size()), got(input.size());
          ref::add_qs8(want.data(), other.data(), input.data(), beyond);
          opt::conv2d_add_qs8(got.data(), input.data(), p, w, other.data(), beyond, false, &beyond_table);
          CHECK(got == want);
        }
      }
  }
  // The output stage above divides the sum of the terms by ~2^(left_shift - 1): a term one
  // off (a rounding of its own wrong) would rarely change an output. Here the output is the
  // sum itself (multiplier 2^30, shift 1: mbqm(x) = x) and the terms nearly cancel (equal
  // shifts, multipliers 1 apart, d2 = -d1), so ~150 pairs per case show the exact sum.
  int exact_pairs = 0;
  for (int32_t left_shift : {10, 12, 13})
    for (int i = 0; i < 12; ++i) {
      const int32_t e = 22 - (31 - left_shift) - i % 2;
      AddParams a{};
      a.size = 256 * 256;
      a.left_shift = left_shift;
      a.input1_zero_point = pick_zero_point(rng), a.input2_zero_point = pick_zero_point(rng);
      a.input1_multiplier = multiplier(i % 3), a.input1_shift = -e;
      a.input2_multiplier = std::max(int32_t{1} << 30, a.input1_multiplier - 1), a.input2_shift = -e;
      a.output_multiplier = int32_t{1} << 30, a.output_shift = 1;
      a.output_zero_point = 0, a.qmin = -128, a.qmax = 127;
      std::vector<int8_t> want(input.size()), got(input.size());
      ref::add_qs8(want.data(), input.data(), other.data(), a);
      opt::conv2d_add_qs8(got.data(), input.data(), p, w, other.data(), a, true);
      size_t diffs = 0;
      for (size_t k = 0; k < want.size(); ++k) {
        diffs += got[k] != want[k];
        exact_pairs += want[k] > -128 && want[k] < 127;
      }
      INFO("conv2d_add exact sums, left_shift " << left_shift << " shift " << -e << ": " << diffs << " differ");
      CHECK(diffs == 0);
    }
  CHECK(exact_pairs > 36 * 100);  // the cases do show unclamped sums (~150 each)
  opt::set_isa(isa0);
}

TEST_CASE("opt add equals ref on every pair of inputs, any left shift and input shift") {
  // The vector code computes each input's term in 32-bit lanes when 8 <= left_shift <= 22 and
  // falls back to 64-bit multiplies below: every (a, b) pair, both sides of that boundary,
  // input shifts from 0 to -31 and zero multipliers.
  Rng rng(419);
  std::vector<int8_t> a(256 * 256), b(256 * 256);
  for (int i = 0; i < 256 * 256; ++i) {
    a[static_cast<size_t>(i)] = static_cast<int8_t>(i % 256 - 128);
    b[static_cast<size_t>(i)] = static_cast<int8_t>(i / 256 - 128);
  }
  auto multiplier = [&] {
    return static_cast<int32_t>((int64_t{1} << 30) + static_cast<int64_t>(rng.next() % (uint64_t{1} << 30)));
  };
  for (int32_t left_shift : {0, 1, 7, 8, 9, 15, 20, 21, 22})
    for (int32_t shift1 : {0, -1, -2, -13, -31})
      for (int32_t shift2 : {0, -1, -7, -30}) {
        AddParams p{};
        p.size = 256 * 256;
        p.left_shift = left_shift;
        p.input1_zero_point = pick_zero_point(rng), p.input2_zero_point = pick_zero_point(rng);
        p.input1_multiplier = multiplier(), p.input1_shift = shift1;
        p.input2_multiplier = multiplier(), p.input2_shift = shift2;
        if (shift2 == -30) p.input2_multiplier = 0, p.input2_shift = 0;  // a zero multiplier
        p.output_multiplier = multiplier(), p.output_shift = -left_shift - static_cast<int32_t>(rng.next() % 4);
        p.output_zero_point = pick_zero_point(rng);
        const Clamp c = pick_clamp(rng, p.output_zero_point);
        p.qmin = c.qmin, p.qmax = c.qmax;
        std::vector<int8_t> want(a.size());
        ref::add_qs8(want.data(), a.data(), b.data(), p);
        expect_ref(want, fmt::format("add left_shift {} shifts {} {}", left_shift, shift1, shift2),
                   [&](int8_t* out) { opt::add_qs8(out, a.data(), b.data(), p); });
      }
}

TEST_CASE("opt float input quantization equals kernels::quantize_float") {
  // Ties (k + 1/2) * scale on both sides of 0, values next to them, NaN, infinities, huge and
  // denormal values, -0 and random values, at several scales, zero points and clamps; counts
  // that leave every tail length.
  Rng rng(423);
  for (const float scale : {1.0f / 255.0f, 0.0178f, 0.5f, 3.0f, 1e-30f}) {
    std::vector<float> x = {0.0f, -0.0f, std::nanf(""), -std::nanf(""), INFINITY, -INFINITY, 3e38f, -3e38f,
                            1e-40f, -1e-40f, std::numeric_limits<float>::min()};
    for (int k = -300; k <= 300; ++k) {
      const float tie = (static_cast<float>(k) + 0.5f) * scale;
      x.push_back(tie);
      x.push_back(std::nextafter(tie, INFINITY));
      x.push_back(std::nextafter(tie, -INFINITY));
    }
    for (int i = 0; i < 3000; ++i) x.push_back(static_cast<float>(uniform_real(rng, -300.0, 300.0)) * scale);
    for (const int64_t count : {int64_t{0}, int64_t{1}, int64_t{7}, int64_t{15}, int64_t{17}, static_cast<int64_t>(x.size())}) {
      const int32_t zp = pick_zero_point(rng);
      const Clamp c = pick_clamp(rng, zp);
      std::vector<int8_t> want(static_cast<size_t>(count));
      for (int64_t i = 0; i < count; ++i)
        want[static_cast<size_t>(i)] =
            static_cast<int8_t>(kernels::quantize_float(x[static_cast<size_t>(i)], scale, zp, c.qmin, c.qmax));
      expect_ref(want, fmt::format("quantize_f32 scale {} count {}", scale, count), [&](int8_t* out) {
        opt::quantize_f32_to_qs8(out, x.data(), count, scale, zp, c.qmin, c.qmax);
      });
    }
  }
}

TEST_CASE("opt concat equals ref") {
  Rng rng(417);
  std::vector<ConcatShape> shapes = concat_shapes();
  shapes.push_back({3, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}});
  shapes.push_back({5, {15, 17, 31, 33, 63, 65, 127, 129}});
  shapes.push_back({3136, {64, 32, 32}});
  for (const ConcatShape& s : shapes) {
    const double s_out = uniform_real(rng, 0.01, 0.05);
    const int32_t zp_out = pick_zero_point(rng);
    std::vector<ConcatInputSpec> specs;
    std::vector<std::vector<int8_t>> data;
    for (size_t k = 0; k < s.channels.size(); ++k) {
      const bool same = rng.below(3) == 0;
      const double scale = same ? s_out : s_out * std::exp(uniform_real(rng, -5.0, 5.0));
      specs.push_back({s.channels[k], scale, same ? zp_out : pick_zero_point(rng)});
      data.push_back(random_bytes(rng, s.outer * s.channels[k]));
    }
    const ConcatParams p = make_concat_params(s.outer, specs, s_out, zp_out);
    std::vector<const int8_t*> ptrs;
    int64_t width = 0;
    for (size_t k = 0; k < data.size(); ++k) ptrs.push_back(data[k].data()), width += s.channels[k];
    std::vector<int8_t> want(static_cast<size_t>(s.outer * width));
    ref::concat_qs8(want.data(), ptrs.data(), p);
    expect_ref(want, fmt::format("concat outer {} inputs {}", s.outer, s.channels.size()),
               [&](int8_t* out) { opt::concat_qs8(out, ptrs.data(), p); });
  }
}

TEST_CASE("opt maxpool2d and avgpool2d equal ref") {
  Rng rng(419);
  std::vector<ConvGeom> geoms;
  for (const ConvShape& s : conv_shapes()) geoms.push_back(from_shape(s, s.c));
  for (const ConvGeom& g : opt_conv_geoms()) geoms.push_back(g);
  geoms.push_back({1, 20, 20, 64, 64, 3, 3, 2, 2, 0, 0, 10, 10});   // ResNet maxpool-like
  geoms.push_back({2, 7, 7, 130, 130, 7, 7, 1, 1, 0, 0, 1, 1});     // 7x7 average
  geoms.push_back({1, 260, 260, 1, 1, 257, 257, 1, 1, 0, 0, 4, 4});  // count > 65536: integer path
  // Max pool rows without a loop per pixel: few channels, odd widths, padding on either side,
  // windows wider than the stride, and rows too wide for its scratch (the per-pixel path).
  for (int64_t c : {1, 3, 12, 17})
    for (int64_t w : {1, 2, 5, 26, 27}) {
      geoms.push_back({2, 5, w, c, c, 2, 2, 2, 2, 0, 0, 2, std::max<int64_t>(1, w / 2)});
      geoms.push_back({1, 6, w, c, c, 3, 3, 2, 2, 1, 1, 3, (w + 1) / 2});
      geoms.push_back({1, 4, w, c, c, 3, 3, 1, 1, 1, 1, 4, w});
    }
  geoms.push_back({1, 4, 30, 5, 5, 1, 3, 1, 3, 0, 0, 4, 10});
  geoms.push_back({1, 3, 300, 64, 64, 2, 2, 2, 2, 0, 0, 1, 150});
  for (const ConvGeom& g : geoms) {
    const auto input = random_bytes(rng, g.n * g.h * g.w * g.c);
    const Clamp c = pick_clamp(rng, pick_zero_point(rng));
    const Pool2DParams p{g.n, g.h, g.w, g.c, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl, g.oh, g.ow, c.qmin, c.qmax};
    std::vector<int8_t> want(static_cast<size_t>(g.n * g.oh * g.ow * g.c));
    Guarded<int8_t> in(input);
    ref::maxpool2d_qs8(want.data(), input.data(), p);
    expect_ref(want, "maxpool " + g.describe(), [&](int8_t* out) { opt::maxpool2d_qs8(out, in.data(), p); });
    ref::avgpool2d_qs8(want.data(), input.data(), p);
    expect_ref(want, "avgpool " + g.describe(), [&](int8_t* out) { opt::avgpool2d_qs8(out, in.data(), p); });
  }
}

TEST_CASE("opt global avgpool equals ref") {
  Rng rng(421);
  const int64_t hws[] = {1, 2, 3, 4, 7, 49, 196, 3136};
  const int64_t cs[] = {1, 3, 8, 15, 16, 17, 64, 255, 257, 1000, 2048};
  for (int64_t hw : hws)
    for (int64_t c : cs) {
      const int64_t n = 1 + (hw + c) % 3;
      const auto input = random_bytes(rng, n * hw * c);
      const double s_in = uniform_real(rng, 0.01, 0.1);
      const double s_out = s_in * std::exp(uniform_real(rng, -3.0, 3.0));
      const auto p0 = make_global_avgpool_params(n, hw, c, s_in, pick_zero_point(rng), s_out, pick_zero_point(rng));
      GlobalAvgPoolParams p = p0;
      const Clamp cl = pick_clamp(rng, p.output_zero_point);
      p.qmin = cl.qmin;
      p.qmax = cl.qmax;
      std::vector<int8_t> want(static_cast<size_t>(n * c));
      ref::global_avgpool_qs8(want.data(), input.data(), p);
      Guarded<int8_t> in(input);
      expect_ref(want, fmt::format("global avgpool n{} hw{} c{}", n, hw, c),
                 [&](int8_t* out) { opt::global_avgpool_qs8(out, in.data(), p); });
    }
}

TEST_CASE("opt quantize u8 to int8 equals ref") {
  Rng rng(423);
  for (int64_t n : elementwise_sizes()) {
    std::vector<uint8_t> pixels(static_cast<size_t>(n));
    for (auto& v : pixels) v = static_cast<uint8_t>(rng.below(256));
    const bool exact = n % 2 == 0;  // the scale-1/255 case: q = pixel - 128
    const QuantizeParams p0 =
        exact ? make_quantize_params(1.0 / 255.0, 0, 1.0 / 255.0, -128)
              : make_quantize_params(1.0 / 255.0 * uniform_real(rng, 0.1, 10.0), uniform_int(rng, 0, 255),
                                     uniform_real(rng, 0.0005, 0.05), pick_zero_point(rng));
    QuantizeParams p = p0;
    if (!exact) {
      const Clamp c = pick_clamp(rng, p.output_zero_point);
      p.qmin = c.qmin;
      p.qmax = c.qmax;
    }
    std::vector<int8_t> want(static_cast<size_t>(n));
    ref::quantize_u8_to_qs8(want.data(), pixels.data(), n, p);
    Guarded<uint8_t> in(pixels);
    expect_ref(want, fmt::format("quantize size {}", n),
               [&](int8_t* out) { opt::quantize_u8_to_qs8(out, in.data(), n, p); });
  }
}

TEST_CASE("opt pad equals ref: padding, cropping, mixed, and all of the output in the padding") {
  Rng rng(733);
  struct Case {
    int64_t n, h, w, c, top, bottom, left, right;
  };
  const Case cases[] = {{1, 5, 6, 3, 1, 1, 1, 1},   {2, 7, 7, 16, 3, 3, 3, 3},  {1, 8, 8, 5, 0, 1, 0, 1},
                        {1, 9, 9, 4, -1, 1, -1, 1}, {3, 6, 5, 1, -2, -1, 0, -3}, {1, 2, 2, 7, 4, 0, 0, 5},
                        {1, 3, 3, 2, -3, 3, 0, 0},  {1, 224, 224, 3, 3, 3, 3, 3}, {1, 1, 1, 1, 0, 0, 0, 0}};
  for (const Case& k : cases) {
    const PadParams p{k.n, k.h, k.w, k.c, k.top, k.bottom, k.left, k.right, k.h + k.top + k.bottom,
                      k.w + k.left + k.right, pick_zero_point(rng)};
    const auto input = random_bytes(rng, k.n * k.h * k.w * k.c);
    std::vector<int8_t> want(static_cast<size_t>(p.n * p.oh * p.ow * p.c));
    Guarded<int8_t> in(input);
    ref::pad_qs8(want.data(), input.data(), p);
    expect_ref(want, fmt::format("pad {}x{}x{} by ({}, {}, {}, {})", k.h, k.w, k.c, k.top, k.bottom, k.left, k.right),
               [&](int8_t* out) { opt::pad_qs8(out, in.data(), p); });
  }
}
