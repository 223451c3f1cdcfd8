// Fake-quant kernels. Work is cut into fixed-size blocks (independent of the thread count), and
// reductions combine per-block results in block order, so any thread count gives the same bits.
#include "quant/fake_quant.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/threads.h"

namespace qatc::quant {
namespace {

constexpr int64_t kBlock = int64_t{1} << 14;  // elements per block
constexpr int64_t kChannelBlock = 256;        // columns per block when channels are many

// Calls fn(begin, end) for the fixed blocks [k*block, min(n, (k+1)*block)) of [0, n).
template <class Fn>
void for_blocks(int64_t n, int64_t block, Fn&& fn) {
  const int64_t blocks = (n + block - 1) / block;
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) fn(b * block, std::min(n, (b + 1) * block));
  });
}

struct Acc {
  float min = std::numeric_limits<float>::infinity();
  float max = -std::numeric_limits<float>::infinity();
  void add(float x) {
    // Comparisons are false for NaN; the isfinite test also drops +-inf.
    if (!std::isfinite(x)) return;
    if (x < min) min = x;
    if (x > max) max = x;
  }
  void merge(const Acc& o) {
    if (o.min < min) min = o.min;
    if (o.max > max) max = o.max;
  }
  MinMax result() const { return min <= max ? MinMax{min, max} : MinMax{0.0f, 0.0f}; }
};

}  // namespace

void fake_quant_forward(float* out, uint8_t* mask, const float* in, int64_t n, const QParams& q) {
  const float lo = dequantize(q.qmin, q), hi = dequantize(q.qmax, q);
  for_blocks(n, kBlock, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float x = in[i];
      const float y = dequantize(quantize(x, q), q);
      if (mask) mask[i] = (x >= lo && x <= hi) ? 1 : 0;
      out[i] = std::isnan(x) ? x : y;
    }
  });
}

void fake_quant_forward_per_channel(float* out, uint8_t* mask, const float* in, int64_t rows,
                                    int64_t channels, const QParams* q) {
  if (rows <= 0 || channels <= 0) return;
  std::vector<float> lo(static_cast<size_t>(channels)), hi(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) {
    lo[static_cast<size_t>(c)] = dequantize(q[c].qmin, q[c]);
    hi[static_cast<size_t>(c)] = dequantize(q[c].qmax, q[c]);
  }
  const int64_t block_rows = std::max<int64_t>(1, kBlock / channels);
  for_blocks(rows, block_rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t base = r * channels;
      for (int64_t c = 0; c < channels; ++c) {
        const float x = in[base + c];
        const float y = dequantize(quantize(x, q[c]), q[c]);
        if (mask)
          mask[base + c] =
              (x >= lo[static_cast<size_t>(c)] && x <= hi[static_cast<size_t>(c)]) ? 1 : 0;
        out[base + c] = std::isnan(x) ? x : y;
      }
    }
  });
}

void fake_quant_backward(float* din, const float* dout, const uint8_t* mask, int64_t n) {
  for_blocks(n, kBlock, [&](int64_t b, int64_t e) {
    // A select, not dout * mask: a blocked gradient is exactly 0 even when dout is inf or NaN.
    for (int64_t i = b; i < e; ++i) din[i] = mask[i] ? dout[i] : 0.0f;
  });
}

MinMax tensor_minmax(const float* x, int64_t n) {
  if (n <= 0) return MinMax{0.0f, 0.0f};
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<Acc> part(static_cast<size_t>(blocks));
  for_blocks(n, kBlock, [&](int64_t b, int64_t e) {
    Acc& a = part[static_cast<size_t>(b / kBlock)];
    for (int64_t i = b; i < e; ++i) a.add(x[i]);
  });
  Acc total;
  for (const Acc& a : part) total.merge(a);
  return total.result();
}

void channel_minmax(MinMax* out, const float* x, int64_t rows, int64_t channels) {
  if (channels <= 0) return;
  std::vector<Acc> total(static_cast<size_t>(channels));
  if (channels >= kChannelBlock) {
    // Many channels: each block owns a slice of columns and walks all rows; no partials.
    for_blocks(channels, kChannelBlock, [&](int64_t c0, int64_t c1) {
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = c0; c < c1; ++c) total[static_cast<size_t>(c)].add(x[r * channels + c]);
    });
  } else if (rows > 0) {
    // Few channels: blocks of rows, each with its own per-channel partials, merged in order.
    const int64_t block_rows = std::max<int64_t>(1, kBlock / channels);
    const int64_t blocks = (rows + block_rows - 1) / block_rows;
    std::vector<Acc> part(static_cast<size_t>(blocks * channels));
    for_blocks(rows, block_rows, [&](int64_t r0, int64_t r1) {
      Acc* a = part.data() + (r0 / block_rows) * channels;
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = 0; c < channels; ++c) a[c].add(x[r * channels + c]);
    });
    for (int64_t b = 0; b < blocks; ++b)
      for (int64_t c = 0; c < channels; ++c)
        total[static_cast<size_t>(c)].merge(part[static_cast<size_t>(b * channels + c)]);
  }
  for (int64_t c = 0; c < channels; ++c) out[c] = total[static_cast<size_t>(c)].result();
}

}  // namespace qatc::quant
