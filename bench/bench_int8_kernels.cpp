// Times the int8 kernels: the reference (qatc::ref) against every optimized path the CPU has
// (qatc::opt: portable, avx2, avx_vnni, avx512_vnni, amx) on MobileNet- and ResNet-like layer
// shapes, and measures the register peak of vpdpbusd (and of AMX's tdpbssd).
//
//   bench_int8_kernels [--threads N] [--batch B] [--repeats R] [--min-ms T] [--only NAME]
//                      [--paths ref,portable,avx2,avx_vnni,avx512_vnni,amx] [--stat median|min]
//                      [--model resnet50|mobilenet_v1|cnn_bn] [--peak-only] [--add]
//
// Per layer and path: the median (or with --stat min the fastest, which load from other work
// disturbs least) over R repeats (bench/stats.h) of the time of one call, each
// repeat running the kernel enough times to last at least T ms (the ref kernels: one call per
// repeat, at most 3 repeats). Weights are packed once before timing (not timed). GMAC/s counts
// one multiply-add per weight per output pixel (one u8 x s8 product in vpdpbusd terms), by wall
// time. The machine may be shared, so the last path is also rated per CPU-second of its threads
// ("cpu-rate": GMAC per second of one core while it runs the kernel, which load from other
// processes does not dilute), and "%peak" is that rate over the vpdpbusd zmm register peak
// per CPU-second. Every optimized output is checked equal to ref's.
//
// --model times every conv, depthwise and dense layer of the network instead (each distinct
// shape once, weighted by its count) and prints the totals: the network's int8 MAC layers
// end to end, without the elementwise ops. ref is left out unless --paths names it.
//
// --add times the residual Add of ResNet50's first stage (56x56x256 per image) on each path,
// arithmetically and by its tables (opt::pack_add), and the time pack_add takes.
//
// The peak: a loop of 24 independent vpdpbusd zmm accumulator chains held in registers (far
// more than latency x throughput; `objdump -d` of peak_avx512 shows no memory operand in the
// loop), 64 MACs per instruction, run on each thread at once; reported by wall time and per
// CPU-second of each thread. The AMX tile peak: 4 independent tdpbssd accumulator tiles,
// 16,384 MACs per instruction; the amx path's total is also rated against it.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <immintrin.h>

#include <fmt/format.h>

#include "peak.h"
#include "stats.h"
#include "core/rng.h"
#include "core/threads.h"
#include "kernels/opt/isa.h"
#include "kernels/opt/kernels.h"
#include "kernels/params.h"
#include "kernels/ref/kernels.h"

using namespace qatc;
using namespace qatc::kernels;

namespace {

bool g_use_min = false;  // --stat min

// ---------------------------------------------------------------------------------------
// vpdpbusd register peak.

constexpr int64_t kPeakIters = 1 << 19;  // ~25 ms of zmm peak loop

// 24 chains x 64 MACs per iteration (bench/peak.h: the chains and why they are opaque).
__attribute__((target("avx512f,avx512vnni"), noinline)) int64_t peak_avx512(int64_t iters, int32_t seed) {
  const __m512i a = _mm512_set1_epi32(seed | 0x01010101), b = _mm512_set1_epi32(seed ^ 0x02020202);
#define QATC_INIT(i) __m512i c##i = _mm512_set1_epi32(seed + i);
  QATC_CHAINS24(QATC_INIT)
#undef QATC_INIT
  for (int64_t i = 0; i < iters; ++i) {
#define QATC_DP(i) c##i = _mm512_dpbusd_epi32(c##i, a, b);
    QATC_CHAINS24(QATC_DP)
#undef QATC_DP
    QATC_OPAQUE24("v");
  }
  __m512i s = _mm512_setzero_si512();
#define QATC_SUM(i) s = _mm512_add_epi32(s, c##i);
  QATC_CHAINS24(QATC_SUM)
#undef QATC_SUM
  alignas(64) int32_t v[16];
  _mm512_store_si512(v, s);
  int64_t r = 0;
  for (int32_t x : v) r += x;
  return r;
}

// 12 chains of ymm (VEX, AVX-VNNI) x 32 MACs per iteration.
__attribute__((target("avx2,avxvnni"), noinline)) int64_t peak_avx_vnni(int64_t iters, int32_t seed) {
  const __m256i a = _mm256_set1_epi32(seed | 0x01010101), b = _mm256_set1_epi32(seed ^ 0x02020202);
#define QATC_INIT(i) __m256i c##i = _mm256_set1_epi32(seed + i);
  QATC_CHAINS12(QATC_INIT)
#undef QATC_INIT
  for (int64_t i = 0; i < iters; ++i) {
#define QATC_DP(i) c##i = _mm256_dpbusd_avx_epi32(c##i, a, b);
    QATC_CHAINS12(QATC_DP)
#undef QATC_DP
    QATC_OPAQUE12("x");
  }
  __m256i s = _mm256_setzero_si256();
#define QATC_SUM(i) s = _mm256_add_epi32(s, c##i);
  QATC_CHAINS12(QATC_SUM)
#undef QATC_SUM
  alignas(32) int32_t v[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(v), s);
  int64_t r = 0;
  for (int32_t x : v) r += x;
  return r;
}

// AMX: 4 independent tdpbssd accumulator tiles (16 x 16 int32) from 2 A and 2 B tiles
// loaded once, 16,384 multiply-adds per instruction. Loads its own tile configuration (a
// thread's tile state is its own); the process has asked for the tile permission already
// (opt::isa_supported(amx)).
struct alignas(64) AmxConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {64, 64, 64, 64, 64, 64, 64, 64};
  uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 16, 16};
};
__attribute__((target("amx-tile,amx-int8"), noinline)) int64_t peak_amx(int64_t iters, int32_t seed) {
  const AmxConfig cfg;
  _tile_loadconfig(&cfg);
  alignas(64) int8_t ab[1024];
  for (int i = 0; i < 1024; ++i) ab[i] = static_cast<int8_t>(seed + i);
  _tile_loadd(4, ab, 64);
  _tile_loadd(5, ab, 64);
  _tile_loadd(6, ab, 64);
  _tile_loadd(7, ab, 64);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t i = 0; i < iters; ++i) {
    _tile_dpbssd(0, 4, 6);
    _tile_dpbssd(1, 4, 7);
    _tile_dpbssd(2, 5, 6);
    _tile_dpbssd(3, 5, 7);
  }
  alignas(64) int32_t c[256];
  _tile_stored(0, c, 64);
  _tile_release();
  int64_t r = 0;
  for (int32_t x : c) r += x;
  return r;
}
constexpr int64_t kAmxPeakIters = 1 << 19;  // ~15 ms at 2 TMAC/s

// The peak loop on `threads` threads at once (each runs the same loop), medians (or, with
// --stat min, maxima) of `repeats`.
bench::Peak peak_gmacs(bool zmm, int threads, int repeats) {
  const double macs = (zmm ? 24.0 * 64.0 : 12.0 * 32.0) * static_cast<double>(kPeakIters);
  return bench::peak_gmacs(
      [&](int32_t seed) { return zmm ? peak_avx512(kPeakIters, seed) : peak_avx_vnni(kPeakIters, seed); }, macs,
      threads, repeats, g_use_min);
}

// ---------------------------------------------------------------------------------------
// Layers.

enum class Kind { conv, depthwise, dense };

struct Layer {
  const char* name;
  Kind kind;
  int64_t h, w, c, oc, k, stride;  // 'same' padding; dense: c = in, oc = out
};

// MobileNet- and ResNet-like layers (NHWC, 'same' padding).
const Layer kLayers[] = {
    {"resnet_stem_7x7s2_224x224x3_64", Kind::conv, 224, 224, 3, 64, 7, 2},
    {"resnet_1x1_56x56x64_256", Kind::conv, 56, 56, 64, 256, 1, 1},
    {"resnet_1x1_56x56x256_64", Kind::conv, 56, 56, 256, 64, 1, 1},
    {"resnet_3x3_56x56x64_64", Kind::conv, 56, 56, 64, 64, 3, 1},
    {"resnet_3x3_28x28x128_128", Kind::conv, 28, 28, 128, 128, 3, 1},
    {"resnet_3x3_14x14x256_256", Kind::conv, 14, 14, 256, 256, 3, 1},
    {"resnet_3x3_7x7x512_512", Kind::conv, 7, 7, 512, 512, 3, 1},
    {"resnet_1x1_7x7x2048_512", Kind::conv, 7, 7, 2048, 512, 1, 1},
    {"mobilenet_1x1_7x7x1024_1024", Kind::conv, 7, 7, 1024, 1024, 1, 1},
    {"mobilenet_1x1_112x112x32_64", Kind::conv, 112, 112, 32, 64, 1, 1},
    {"mobilenet_dw3x3_112x112x32", Kind::depthwise, 112, 112, 32, 32, 3, 1},
    {"mobilenet_dw3x3s2_112x112x64", Kind::depthwise, 112, 112, 64, 64, 3, 2},
    {"mobilenet_dw3x3_14x14x512", Kind::depthwise, 14, 14, 512, 512, 3, 1},
    {"dense_2048_1000", Kind::dense, 1, 1, 2048, 1000, 1, 1},
};

// Whole networks (--model): every conv, depthwise and dense layer once per distinct shape,
// with the number of times it occurs.
struct ModelLayer {
  Layer layer;
  int count;
};

// ResNet-50 v1.5 at 224x224 (stride 2 in the 3x3 of each stage's first block): 4.09 GMAC.
const ModelLayer kResNet50[] = {
    {{"conv1_7x7s2", Kind::conv, 224, 224, 3, 64, 7, 2}, 1},
    {{"s2_1x1_64_64", Kind::conv, 56, 56, 64, 64, 1, 1}, 1},
    {{"s2_3x3_64_64", Kind::conv, 56, 56, 64, 64, 3, 1}, 3},
    {{"s2_1x1_64_256", Kind::conv, 56, 56, 64, 256, 1, 1}, 4},
    {{"s2_1x1_256_64", Kind::conv, 56, 56, 256, 64, 1, 1}, 2},
    {{"s3_1x1_256_128", Kind::conv, 56, 56, 256, 128, 1, 1}, 1},
    {{"s3_3x3s2_128_128", Kind::conv, 56, 56, 128, 128, 3, 2}, 1},
    {{"s3_1x1_128_512", Kind::conv, 28, 28, 128, 512, 1, 1}, 4},
    {{"s3_1x1s2_256_512", Kind::conv, 56, 56, 256, 512, 1, 2}, 1},
    {{"s3_1x1_512_128", Kind::conv, 28, 28, 512, 128, 1, 1}, 3},
    {{"s3_3x3_128_128", Kind::conv, 28, 28, 128, 128, 3, 1}, 3},
    {{"s4_1x1_512_256", Kind::conv, 28, 28, 512, 256, 1, 1}, 1},
    {{"s4_3x3s2_256_256", Kind::conv, 28, 28, 256, 256, 3, 2}, 1},
    {{"s4_1x1_256_1024", Kind::conv, 14, 14, 256, 1024, 1, 1}, 6},
    {{"s4_1x1s2_512_1024", Kind::conv, 28, 28, 512, 1024, 1, 2}, 1},
    {{"s4_1x1_1024_256", Kind::conv, 14, 14, 1024, 256, 1, 1}, 5},
    {{"s4_3x3_256_256", Kind::conv, 14, 14, 256, 256, 3, 1}, 5},
    {{"s5_1x1_1024_512", Kind::conv, 14, 14, 1024, 512, 1, 1}, 1},
    {{"s5_3x3s2_512_512", Kind::conv, 14, 14, 512, 512, 3, 2}, 1},
    {{"s5_1x1_512_2048", Kind::conv, 7, 7, 512, 2048, 1, 1}, 3},
    {{"s5_1x1s2_1024_2048", Kind::conv, 14, 14, 1024, 2048, 1, 2}, 1},
    {{"s5_1x1_2048_512", Kind::conv, 7, 7, 2048, 512, 1, 1}, 2},
    {{"s5_3x3_512_512", Kind::conv, 7, 7, 512, 512, 3, 1}, 2},
    {{"fc_2048_1000", Kind::dense, 1, 1, 2048, 1000, 1, 1}, 1},
};

// MobileNet v1 (width 1.0) at 224x224: 0.57 GMAC.
const ModelLayer kMobileNetV1[] = {
    {{"conv1_3x3s2", Kind::conv, 224, 224, 3, 32, 3, 2}, 1},
    {{"dw_112_32", Kind::depthwise, 112, 112, 32, 32, 3, 1}, 1},
    {{"pw_112_32_64", Kind::conv, 112, 112, 32, 64, 1, 1}, 1},
    {{"dw_s2_112_64", Kind::depthwise, 112, 112, 64, 64, 3, 2}, 1},
    {{"pw_56_64_128", Kind::conv, 56, 56, 64, 128, 1, 1}, 1},
    {{"dw_56_128", Kind::depthwise, 56, 56, 128, 128, 3, 1}, 1},
    {{"pw_56_128_128", Kind::conv, 56, 56, 128, 128, 1, 1}, 1},
    {{"dw_s2_56_128", Kind::depthwise, 56, 56, 128, 128, 3, 2}, 1},
    {{"pw_28_128_256", Kind::conv, 28, 28, 128, 256, 1, 1}, 1},
    {{"dw_28_256", Kind::depthwise, 28, 28, 256, 256, 3, 1}, 1},
    {{"pw_28_256_256", Kind::conv, 28, 28, 256, 256, 1, 1}, 1},
    {{"dw_s2_28_256", Kind::depthwise, 28, 28, 256, 256, 3, 2}, 1},
    {{"pw_14_256_512", Kind::conv, 14, 14, 256, 512, 1, 1}, 1},
    {{"dw_14_512", Kind::depthwise, 14, 14, 512, 512, 3, 1}, 5},
    {{"pw_14_512_512", Kind::conv, 14, 14, 512, 512, 1, 1}, 5},
    {{"dw_s2_14_512", Kind::depthwise, 14, 14, 512, 512, 3, 2}, 1},
    {{"pw_7_512_1024", Kind::conv, 7, 7, 512, 1024, 1, 1}, 1},
    {{"dw_7_1024", Kind::depthwise, 7, 7, 1024, 1024, 3, 1}, 1},
    {{"pw_7_1024_1024", Kind::conv, 7, 7, 1024, 1024, 1, 1}, 1},
    {{"fc_1024_1000", Kind::dense, 1, 1, 1024, 1000, 1, 1}, 1},
};

// recipes/mnist/cnn_bn.yaml (its max pools are not GEMMs and not timed).
const ModelLayer kCnnBn[] = {
    {{"conv1_28_1_32", Kind::conv, 28, 28, 1, 32, 3, 1}, 1},
    {{"conv2_28_32_32", Kind::conv, 28, 28, 32, 32, 3, 1}, 1},
    {{"conv3_14_32_64", Kind::conv, 14, 14, 32, 64, 3, 1}, 1},
    {{"conv4_14_64_64", Kind::conv, 14, 14, 64, 64, 3, 1}, 1},
    {{"fc_3136_128", Kind::dense, 1, 1, 3136, 128, 1, 1}, 1},
    {{"fc_128_10", Kind::dense, 1, 1, 128, 10, 1, 1}, 1},
};

std::vector<int8_t> random_bytes(Rng& rng, int64_t n) {
  std::vector<int8_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<int8_t>(rng.below(256) - 128);
  return v;
}

// Same-padding geometry of one axis.
void same_geom(int64_t in, int64_t k, int64_t s, int64_t* out, int64_t* pad) {
  *out = (in + s - 1) / s;
  *pad = std::max<int64_t>((*out - 1) * s + k - in, 0) / 2;
}

// The buffers and params of one layer at one batch size.
struct Case {
  std::vector<int8_t> in, w, out, want;
  std::vector<int32_t> bias;
  ChannelMultipliers cm;
  Conv2DParams conv{};
  DepthwiseConv2DParams dw{};
  DenseParams dense{};
  double macs = 0;
};

Case make_case(const Layer& l, int64_t batch, Rng& rng) {
  Case k;
  const int64_t oc = l.kind == Kind::depthwise ? l.c : l.oc;
  const int64_t depth = l.kind == Kind::depthwise ? l.k * l.k : l.kind == Kind::dense ? l.c : l.k * l.k * l.c;
  std::vector<double> s_w;
  for (int64_t i = 0; i < oc; ++i) s_w.push_back(64.0 / (74.0 * 74.0 * std::sqrt(static_cast<double>(depth))) * (0.5 + rng.uniform()));
  k.cm = make_channel_multipliers(1.0, s_w, 1.0);
  for (int64_t i = 0; i < oc; ++i) k.bias.push_back(static_cast<int32_t>(rng.below(20001)) - 10000);
  const int32_t zp_in = -3, zp_out = 5;
  if (l.kind == Kind::dense) {
    k.in = random_bytes(rng, batch * l.c);
    k.w = random_bytes(rng, l.oc * l.c);
    k.dense = {batch, l.c, l.oc, zp_in, zp_out, k.w.data(), k.bias.data(), k.cm.multiplier.data(), k.cm.shift.data(), -128, 127};
    k.out.resize(static_cast<size_t>(batch * l.oc));
    k.macs = static_cast<double>(batch * l.c * l.oc);
    return k;
  }
  int64_t oh, ow, pt, pl;
  same_geom(l.h, l.k, l.stride, &oh, &pt);
  same_geom(l.w, l.k, l.stride, &ow, &pl);
  k.in = random_bytes(rng, batch * l.h * l.w * l.c);
  if (l.kind == Kind::conv) {
    k.w = random_bytes(rng, l.oc * l.k * l.k * l.c);
    k.conv = {batch, l.h, l.w, l.c, l.k, l.k, l.oc, l.stride, l.stride, pt, pl, oh, ow, zp_in, zp_out,
              k.w.data(), k.bias.data(), k.cm.multiplier.data(), k.cm.shift.data(), -128, 127};
    k.macs = static_cast<double>(batch * oh * ow * l.oc * l.k * l.k * l.c);
  } else {
    k.w = random_bytes(rng, l.k * l.k * l.c);
    k.dw = {batch, l.h, l.w, l.c, l.k, l.k, 1, l.stride, l.stride, pt, pl, oh, ow, zp_in, zp_out,
            k.w.data(), k.bias.data(), k.cm.multiplier.data(), k.cm.shift.data(), -128, 127};
    k.macs = static_cast<double>(batch * oh * ow * l.c * l.k * l.k);
  }
  k.out.resize(static_cast<size_t>(batch * oh * ow * oc));
  return k;
}

struct Timing {
  double wall, cpu;  // seconds per call: wall clock, and CPU time of all threads
};

double summary(const std::vector<double>& v) {
  return g_use_min ? *std::min_element(v.begin(), v.end()) : bench::median(v);
}

// Medians (or minima) over `repeats` of the time per call, each repeat calling f until min_s
// elapsed.
Timing time_per_call(const std::function<void()>& f, int repeats, double min_s) {
  f();  // warm up
  std::vector<double> wall, cpu;
  for (int r = 0; r < repeats; ++r) {
    int64_t calls = 0;
    const double c0 = bench::process_cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    double s = 0;
    do {
      f();
      ++calls;
      s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } while (s < min_s);
    wall.push_back(s / static_cast<double>(calls));
    cpu.push_back((bench::process_cpu_seconds() - c0) / static_cast<double>(calls));
  }
  return {summary(wall), summary(cpu)};
}

// --add: the residual Add of ResNet50's first stage (56x56x256 per image, the converter's
// parameters for two inputs of close scales) on each path, computed arithmetically and by its
// tables (opt::pack_add, where the path adds by tables), checked against the reference.
int run_add(const std::vector<std::string>& paths, int64_t batch, int repeats, double min_ms) {
  Rng rng(11);
  const int64_t n = batch * 56 * 56 * 256;
  const std::vector<int8_t> a = random_bytes(rng, n), b = random_bytes(rng, n);
  const AddParams p = make_add_params(0.041, -7, 0.029, 12, 0.063, -20, -128, 127, n);
  std::vector<int8_t> want(static_cast<size_t>(n)), out(static_cast<size_t>(n));
  ref::add_qs8(want.data(), a.data(), b.data(), p);
  const auto t0 = std::chrono::steady_clock::now();
  const opt::PackedAdd table = opt::pack_add(p);
  const double pack_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("add 56x56x256 x %lld: %lld bytes per input; tables %s in %.2f ms\n", static_cast<long long>(batch),
              static_cast<long long>(n), table.exact ? "found" : "not found", pack_ms);
  std::printf("%-12s %10s %14s %10s %14s\n", "path", "arith ms", "ns/64 outputs", "tables ms", "ns/64 outputs");
  for (const std::string& path : paths) {
    if (path == "ref") continue;
    opt::set_isa(opt::parse_isa(path));
    std::printf("%-12s", path.c_str());
    for (const bool by_table : {false, true}) {
      if (by_table && !(table.exact && opt::add_table_used(opt::active_isa()))) {
        std::printf(" %10s %14s", "-", "-");
        continue;
      }
      const Timing s = time_per_call(
          [&] {
            if (by_table) opt::add_qs8(out.data(), a.data(), b.data(), p, table);
            else opt::add_qs8(out.data(), a.data(), b.data(), p);
          },
          repeats, min_ms * 1e-3);
      if (out != want) {
        std::printf("\nMISMATCH: add on %s%s differs from ref\n", path.c_str(), by_table ? " by tables" : "");
        return 1;
      }
      std::printf(" %10.3f %14.2f", s.wall * 1e3, s.wall * 1e9 * 64.0 / static_cast<double>(n));
    }
    std::printf("\n");
  }
  return 0;
}

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: bench_int8_kernels [--threads N] [--batch B] [--repeats R] [--min-ms T] "
               "[--only NAME] [--paths ref,portable,avx2,avx_vnni,avx512_vnni,amx] [--stat median|min] "
               "[--model resnet50|mobilenet_v1|cnn_bn] [--peak-only] [--add]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1, repeats = 7;
  int64_t batch = 1;
  double min_ms = 50;
  std::string only, paths_arg, model;
  bool peak_only = false, add = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--peak-only" || a == "--add") {
      (a == "--add" ? add : peak_only) = true;
      continue;
    }
    if (i + 1 >= argc) usage();
    const char* v = argv[++i];
    if (a == "--threads") threads = std::max(1, std::atoi(v));
    else if (a == "--batch") batch = std::max(1, std::atoi(v));
    else if (a == "--repeats") repeats = std::max(1, std::atoi(v));
    else if (a == "--min-ms") min_ms = std::max(0.0, std::atof(v));
    else if (a == "--only") only = v;
    else if (a == "--paths") paths_arg = v;
    else if (a == "--model" && (std::string(v) == "resnet50" || std::string(v) == "mobilenet_v1" ||
                                    std::string(v) == "cnn_bn"))
      model = v;
    else if (a == "--stat" && std::string(v) == "min") g_use_min = true;
    else if (a == "--stat" && std::string(v) == "median") g_use_min = false;
    else usage();
  }
  set_num_threads(threads);
  if (paths_arg.empty()) {
    paths_arg = model.empty() ? "ref" : "";
    for (opt::Isa isa : opt::supported_isas())
      paths_arg += std::string(paths_arg.empty() ? "" : ",") + opt::to_string(isa);
  }

  std::printf("int8 kernels: batch %lld, %d thread(s), %s of %d repeats (>= %.0f ms each)\n",
              static_cast<long long>(batch), num_threads(), g_use_min ? "best" : "median", repeats, min_ms);
  // Per-core peak by CPU time (what one core does while it runs this thread), and wall-clock
  // totals on 1 and 2 threads.
  double peak_core = 0;
  const auto print_peak = [&](bool zmm) {
    const bench::Peak p1 = peak_gmacs(zmm, 1, 21), p2 = peak_gmacs(zmm, 2, 21);
    std::printf("vpdpbusd %s register peak: 1 thread %.1f GMAC/s (%.1f per CPU-second), "
                "2 threads %.1f GMAC/s (%.1f per CPU-second per thread)\n",
                zmm ? "zmm" : "ymm (AVX-VNNI)", p1.wall, p1.per_cpu, p2.wall, p2.per_cpu);
    if (zmm) peak_core = std::max(p1.per_cpu, p2.per_cpu);
  };
  if (opt::isa_supported(opt::Isa::avx512_vnni)) print_peak(true);
  if (opt::isa_supported(opt::Isa::avx_vnni)) print_peak(false);
  double amx_peak_core = 0;
  if (opt::isa_supported(opt::Isa::amx)) {
    const double macs = 4.0 * 16384.0 * static_cast<double>(kAmxPeakIters);
    const auto run = [](int32_t seed) { return peak_amx(kAmxPeakIters, seed); };
    const bench::Peak p1 = bench::peak_gmacs(run, macs, 1, 21, g_use_min), p2 = bench::peak_gmacs(run, macs, 2, 21, g_use_min);
    std::printf("tdpbssd AMX tile peak: 1 thread %.1f GMAC/s (%.1f per CPU-second), "
                "2 threads %.1f GMAC/s (%.1f per CPU-second per thread)\n",
                p1.wall, p1.per_cpu, p2.wall, p2.per_cpu);
    amx_peak_core = std::max(p1.per_cpu, p2.per_cpu);
  }
  if (peak_only) return 0;

  std::vector<std::string> paths;
  for (size_t b = 0; b <= paths_arg.size();) {
    const size_t e = std::min(paths_arg.find(',', b), paths_arg.size());
    paths.push_back(paths_arg.substr(b, e - b));
    b = e + 1;
  }
  for (const std::string& p : paths)
    if (p != "ref" && !opt::isa_supported(opt::parse_isa(p))) {
      std::fprintf(stderr, "path %s is not supported by this CPU\n", p.c_str());
      return 2;
    }

  if (add) return run_add(paths, batch, repeats, min_ms);

  std::vector<ModelLayer> layers;
  if (model == "resnet50") layers.assign(std::begin(kResNet50), std::end(kResNet50));
  else if (model == "mobilenet_v1") layers.assign(std::begin(kMobileNetV1), std::end(kMobileNetV1));
  else if (model == "cnn_bn") layers.assign(std::begin(kCnnBn), std::end(kCnnBn));
  else
    for (const Layer& l : kLayers) layers.push_back({l, 1});
  const bool check = std::find(paths.begin(), paths.end(), "ref") != paths.end();

  std::printf("%-30s %7s", model.empty() ? "layer" : "layer (x count)", "MMAC");
  for (const std::string& p : paths) std::printf(" %19s", (p + " ms GMAC/s").c_str());
  std::printf(" %9s%s\n", "cpu-rate", peak_core > 0 ? "  %peak" : "");
  Rng rng(7);
  double total_macs = 0;
  std::vector<Timing> total(paths.size(), Timing{0, 0});
  for (const ModelLayer& ml : layers) {
    const Layer& l = ml.layer;
    if (!only.empty() && l.name != only) continue;
    Case k = make_case(l, batch, rng);
    std::function<void()> run_ref = [&] {
      if (l.kind == Kind::conv) ref::conv2d_qs8(k.out.data(), k.in.data(), k.conv);
      else if (l.kind == Kind::depthwise) ref::depthwise_conv2d_qs8(k.out.data(), k.in.data(), k.dw);
      else ref::dense_qs8(k.out.data(), k.in.data(), k.dense);
    };
    if (check) {  // the reference output, checked against every path
      run_ref();
      k.want = k.out;
    }
    const std::string name = ml.count > 1 ? fmt::format("{} x{}", l.name, ml.count) : std::string(l.name);
    std::printf("%-30s %7.1f", name.c_str(), k.macs * ml.count * 1e-6);
    std::fflush(stdout);
    total_macs += k.macs * ml.count;
    double last_cpu_rate = 0;
    for (size_t pi = 0; pi < paths.size(); ++pi) {
      const std::string& p = paths[pi];
      Timing s;
      if (p == "ref") {
        s = time_per_call(run_ref, std::min(repeats, 3), 0.0);
      } else {
        opt::set_isa(opt::parse_isa(p));
        const opt::PackedConv w = l.kind == Kind::conv        ? opt::pack_conv2d(k.conv)
                                  : l.kind == Kind::depthwise ? opt::pack_depthwise(k.dw)
                                                              : opt::pack_dense(k.dense);
        std::fill(k.out.begin(), k.out.end(), int8_t{0});
        const std::function<void()> run = [&] {
          if (l.kind == Kind::conv) opt::conv2d_qs8(k.out.data(), k.in.data(), k.conv, w);
          else if (l.kind == Kind::depthwise) opt::depthwise_conv2d_qs8(k.out.data(), k.in.data(), k.dw, w);
          else opt::dense_qs8(k.out.data(), k.in.data(), k.dense, w);
        };
        s = time_per_call(run, repeats, min_ms * 1e-3);
        if (check && k.out != k.want) {
          std::printf("\nMISMATCH: %s on %s differs from ref\n", p.c_str(), l.name);
          return 1;
        }
      }
      total[pi].wall += s.wall * ml.count;
      total[pi].cpu += s.cpu * ml.count;
      last_cpu_rate = k.macs / s.cpu * 1e-9;
      std::printf(" %10.3f %8.1f", s.wall * 1e3 * ml.count, k.macs / s.wall * 1e-9);
      std::fflush(stdout);
    }
    std::printf(" %9.1f", last_cpu_rate);
    if (peak_core > 0) std::printf(" %6.1f%%", 100.0 * last_cpu_rate / peak_core);
    std::printf("\n");
  }
  if (!model.empty() && only.empty()) {
    std::printf("%-30s %7.1f", ("total " + model).c_str(), total_macs * 1e-6);
    for (const Timing& t : total) std::printf(" %10.3f %8.1f", t.wall * 1e3, total_macs / t.wall * 1e-9);
    const double rate = total_macs / total.back().cpu * 1e-9;
    std::printf(" %9.1f", rate);
    if (peak_core > 0) std::printf(" %6.1f%%", 100.0 * rate / peak_core);
    std::printf("\n");
    if (peak_core > 0)
      std::printf("%s: %.1f%% of the vpdpbusd zmm register peak times %d thread(s) by wall time, "
                  "%.1f%% per CPU-second\n",
                  paths.back().c_str(), 100.0 * total_macs / total.back().wall * 1e-9 / (peak_core * num_threads()),
                  num_threads(), 100.0 * rate / peak_core);
    if (amx_peak_core > 0 && paths.back() == "amx")
      std::printf("amx: %.1f%% of the tdpbssd AMX tile peak per CPU-second\n", 100.0 * rate / amx_peak_core);
  }
  return 0;
}
