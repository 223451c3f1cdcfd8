// Drivers of the optimized add, concat, pools and input quantize: argument checks and the
// split over threads. The arithmetic is in the isa_*.cpp files.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/threads.h"
#include "kernels/check.h"
#include "kernels/opt/internal.h"
#include "kernels/opt/kernels.h"

namespace qatc::opt {

namespace {

constexpr int64_t kGrainBytes = 16 * 1024;  // smallest share of a thread, in output bytes

int64_t grain_rows(int64_t row_bytes) { return std::max<int64_t>(1, kGrainBytes / std::max<int64_t>(1, row_bytes)); }

}  // namespace

void add_qs8(int8_t* out, const int8_t* a, const int8_t* b, const kernels::AddParams& p) {
  kernels::check(p, out, a, b);
  const detail::IsaOps& ops = detail::ops_for(active_isa());
  parallel_for(p.size, kGrainBytes, [&](int64_t i0, int64_t i1) { ops.add(out, a, b, p, i0, i1); });
}

void add_qs8(int8_t* out, const int8_t* a, const int8_t* b, const kernels::AddParams& p, const PackedAdd& table) {
  kernels::check(p, out, a, b);
  detail::check_table(table, p);
  const PackedAdd* t = detail::table_for(&table, active_isa());
  if (t == nullptr) {
    add_qs8(out, a, b, p);
    return;
  }
  parallel_for(p.size, kGrainBytes, [&](int64_t i0, int64_t i1) {
    detail::add_table_rows(*t, out + i0, 0, a + i0, 0, b + i0, 0, 1, i1 - i0);
  });
}

void quantize_u8_to_qs8(int8_t* out, const uint8_t* in, int64_t count,
                        const kernels::QuantizeParams& p) {
  kernels::check(p, out, in, count);
  const detail::IsaOps& ops = detail::ops_for(active_isa());
  parallel_for(count, kGrainBytes, [&](int64_t i0, int64_t i1) { ops.quantize(out, in, p, i0, i1); });
}

void quantize_f32_to_qs8(int8_t* out, const float* x, int64_t count, float scale, int32_t zero_point,
                         int32_t qmin, int32_t qmax) {
  QATC_CHECK(scale > 0 && std::isfinite(scale));
  QATC_CHECK(-128 <= qmin && qmin <= qmax && qmax <= 127 && -128 <= zero_point && zero_point <= 127);
  QATC_CHECK(count >= 0);
  const detail::IsaOps& ops = detail::ops_for(active_isa());
  const detail::FloatQuant q{scale, zero_point, qmin, qmax};
  parallel_for(count, kGrainBytes, [&](int64_t i0, int64_t i1) { ops.quantize_float(out, x, q, i0, i1); });
}

void concat_qs8(int8_t* out, const int8_t* const* inputs, const kernels::ConcatParams& p) {
  kernels::check(p, out, inputs);
  const detail::IsaOps& ops = detail::ops_for(active_isa());
  int64_t total = 0;
  for (const auto& ci : p.inputs) total += ci.channels;
  parallel_for(p.outer, grain_rows(total), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int8_t* o = out + r * total;
      for (size_t k = 0; k < p.inputs.size(); ++k) {
        const kernels::ConcatInput& ci = p.inputs[k];
        const int8_t* src = inputs[k] + r * ci.channels;
        if (ci.copy)
          std::memcpy(o, src, static_cast<size_t>(ci.channels));
        else
          ops.concat_requant(o, src, ci.channels, ci, p.output_zero_point);
        o += ci.channels;
      }
    }
  });
}

void maxpool2d_qs8(int8_t* out, const int8_t* in, const kernels::Pool2DParams& p) {
  kernels::check(p, out, in);
  const detail::IsaOps& ops = detail::ops_for(active_isa());
  parallel_for(p.n * p.oh, grain_rows(p.ow * p.c),
               [&](int64_t r0, int64_t r1) { ops.maxpool(out, in, p, r0, r1); });
}

void avgpool2d_qs8(int8_t* out, const int8_t* in, const kernels::Pool2DParams& p) {
  kernels::check(p, out, in);
  const detail::IsaOps& ops = detail::ops_for(active_isa());
  parallel_for(p.n * p.oh, grain_rows(p.ow * p.c), [&](int64_t r0, int64_t r1) {
    auto* sums = static_cast<int32_t*>(detail::thread_scratch(static_cast<size_t>(p.c) * 4));
    ops.avgpool(out, in, p, r0, r1, sums);
  });
}

void global_avgpool_qs8(int8_t* out, const int8_t* in, const kernels::GlobalAvgPoolParams& p) {
  kernels::check(p, out, in);
  const detail::IsaOps& ops = detail::ops_for(active_isa());
  constexpr int64_t kChunk = 256;  // channels per task: the int32 sums stay in L1
  const int64_t chunks = (p.c + kChunk - 1) / kChunk;
  parallel_for(p.n * chunks, 1, [&](int64_t t0, int64_t t1) {
    // Rounded up to whole vectors: the kernel reads and writes sums in full vectors.
    auto* sums = static_cast<int32_t*>(detail::thread_scratch((kChunk + 16) * 4));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / chunks, c0 = t % chunks * kChunk;
      ops.global_avgpool(out, in, p, b, c0, std::min(p.c, c0 + kChunk), sums);
    }
  });
}

}  // namespace qatc::opt
