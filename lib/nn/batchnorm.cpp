// Batch normalization kernels (train and eval, forward and backward).
// Per-channel reductions run over fixed row blocks summed in double (each block from short
// float runs), so results are accurate and do not depend on the thread count.
#include "nn/batchnorm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/threads.h"

namespace qatc::nn {
namespace {

constexpr int64_t kBlockRows = 256;
// Rows summed in float before each fold into the double block sums: short enough that float
// rounding stays far below what the statistics need, long enough that the loop over channels
// runs in float vectors, twice as wide as double ones and with no conversions.
constexpr int64_t kRunRows = 16;
constexpr int64_t kGrainFloats = int64_t{1} << 15;

// total[nsum*c] = sum over rows of what fn adds: fn(r0, r1, run) adds rows [r0, r1) (at most
// kRunRows) into the zeroed float run[nsum*c]. Runs fold into double sums per fixed-size block
// and the blocks are combined in order, so the result does not depend on the thread count.
template <class Fn>
void blocked_channel_sums(std::vector<double>& total, int64_t nsum, int64_t rows, int64_t c,
                          Fn&& fn) {
  const int64_t width = nsum * c;
  const int64_t blocks = (rows + kBlockRows - 1) / kBlockRows;
  std::vector<double> partial(static_cast<size_t>(blocks * width), 0.0);
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> run(static_cast<size_t>(width));
    for (int64_t blk = b0; blk < b1; ++blk) {
      double* acc = partial.data() + blk * width;
      const int64_t end = std::min(rows, (blk + 1) * kBlockRows);
      for (int64_t r = blk * kBlockRows; r < end; r += kRunRows) {
        std::fill(run.begin(), run.end(), 0.0f);
        fn(r, std::min(end, r + kRunRows), run.data());
        for (int64_t j = 0; j < width; ++j) acc[j] += run[static_cast<size_t>(j)];
      }
    }
  });
  total.assign(static_cast<size_t>(width), 0.0);
  for (int64_t blk = 0; blk < blocks; ++blk)
    for (int64_t j = 0; j < width; ++j)
      total[static_cast<size_t>(j)] += partial[static_cast<size_t>(blk * width + j)];
}

// run[ch] += sum dy, run[c + ch] += sum dy * (x - center[ch]) over rows [r0, r1).
void add_grad_sums(float* __restrict run, const float* __restrict dout, const float* __restrict in,
                   const float* __restrict center, int64_t r0, int64_t r1, int64_t c) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* dy = dout + r * c;
    const float* x = in + r * c;
    for (int64_t ch = 0; ch < c; ++ch) {
      run[ch] += dy[ch];
      run[c + ch] += dy[ch] * (x[ch] - center[ch]);
    }
  }
}

// out = (in - mean) * gamma / sqrt(var + eps) + beta. Subtracting the mean first (rather than
// folding it into one shift) keeps float precision when the mean is large against the spread.
void normalize(float* out, const float* in, const float* gamma, const float* beta,
               const float* mean, const float* var, float eps, int64_t rows, int64_t c) {
  std::vector<float> scale(static_cast<size_t>(c));
  for (int64_t ch = 0; ch < c; ++ch)
    scale[static_cast<size_t>(ch)] =
        static_cast<float>(static_cast<double>(gamma[ch]) / std::sqrt(static_cast<double>(var[ch]) + eps));
  batchnorm_apply(out, in, scale.data(), beta, mean, rows, c, Activation::none);
}

}  // namespace

void batchnorm_forward_train(float* out, float* batch_mean, float* batch_var, const float* in,
                             const float* gamma, const float* beta, float eps, int64_t rows,
                             int64_t c) {
  // Sums of (x - first row) rather than x: the shift removes the cancellation that
  // E[x^2] - E[x]^2 suffers when the mean is large compared with the spread.
  std::vector<double> sums;
  blocked_channel_sums(sums, 2, rows, c, [&](int64_t r0, int64_t r1, float* __restrict run) {
    const float* __restrict x0 = in;
    for (int64_t r = r0; r < r1; ++r) {
      const float* __restrict x = in + r * c;
      for (int64_t ch = 0; ch < c; ++ch) {
        const float d = x[ch] - x0[ch];
        run[ch] += d;
        run[c + ch] += d * d;
      }
    }
  });
  const double inv_rows = 1.0 / static_cast<double>(rows);
  for (int64_t ch = 0; ch < c; ++ch) {
    const double m = sums[static_cast<size_t>(ch)] * inv_rows;
    const double v = sums[static_cast<size_t>(c + ch)] * inv_rows - m * m;
    batch_mean[ch] = static_cast<float>(m + in[ch]);
    batch_var[ch] = static_cast<float>(std::max(v, 0.0));
  }
  normalize(out, in, gamma, beta, batch_mean, batch_var, eps, rows, c);
}

void batchnorm_forward_eval(float* out, const float* in, const float* gamma, const float* beta,
                            const float* mean, const float* var, float eps, int64_t rows,
                            int64_t c) {
  normalize(out, in, gamma, beta, mean, var, eps, rows, c);
}

void batchnorm_apply(float* out, const float* in, const float* scale, const float* beta, const float* mean,
                     int64_t rows, int64_t c, Activation act) {
  parallel_for(rows, std::max<int64_t>(1, kGrainFloats / c), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = in + r * c;
      float* y = out + r * c;
      for (int64_t ch = 0; ch < c; ++ch) y[ch] = (x[ch] - mean[ch]) * scale[ch] + beta[ch];
      activate(y, c, act);
    }
  });
}

void batchnorm_update_moving(float* moving_mean, float* moving_var, const float* batch_mean,
                             const float* batch_var, float momentum, int64_t c) {
  for (int64_t ch = 0; ch < c; ++ch) {
    moving_mean[ch] = moving_mean[ch] * momentum + batch_mean[ch] * (1.0f - momentum);
    moving_var[ch] = moving_var[ch] * momentum + batch_var[ch] * (1.0f - momentum);
  }
}

void batchnorm_backward(float* din, float* dgamma, float* dbeta, const float* dout, const float* in,
                        const float* gamma, const float* batch_mean, const float* batch_var,
                        float eps, int64_t rows, int64_t c) {
  // sums[ch] = sum dout, sums[c + ch] = sum dout * (in - mean)
  std::vector<double> sums;
  blocked_channel_sums(sums, 2, rows, c, [&](int64_t r0, int64_t r1, float* run) {
    add_grad_sums(run, dout, in, batch_mean, r0, r1, c);
  });
  const double inv_rows = 1.0 / static_cast<double>(rows);
  std::vector<float> a(static_cast<size_t>(c)), b(static_cast<size_t>(c)), k(static_cast<size_t>(c));
  for (int64_t ch = 0; ch < c; ++ch) {
    const size_t u = static_cast<size_t>(ch);
    const double inv_std = 1.0 / std::sqrt(static_cast<double>(batch_var[ch]) + eps);
    const double sum_dy = sums[u], sum_dy_xhat = sums[static_cast<size_t>(c) + u] * inv_std;
    if (dbeta) dbeta[ch] += static_cast<float>(sum_dy);
    if (dgamma) dgamma[ch] += static_cast<float>(sum_dy_xhat);
    // din = g*is*dy - g*is*mean(dy) - (x - mu)*g*is^2*mean(dy*xhat), i.e. a*dy + b*(x - mu) + k.
    const double gi = gamma[ch] * inv_std;
    a[u] = static_cast<float>(gi);
    b[u] = static_cast<float>(-gi * inv_std * sum_dy_xhat * inv_rows);
    k[u] = static_cast<float>(-gi * sum_dy * inv_rows);
  }
  if (!din) return;
  parallel_for(rows, std::max<int64_t>(1, kGrainFloats / c), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* dy = dout + r * c;
      const float* x = in + r * c;
      float* dx = din + r * c;
      for (int64_t ch = 0; ch < c; ++ch) {
        const size_t u = static_cast<size_t>(ch);
        dx[ch] += a[u] * dy[ch] + b[u] * (x[ch] - batch_mean[ch]) + k[u];
      }
    }
  });
}

void batchnorm_backward_eval(float* din, float* dgamma, float* dbeta, const float* dout,
                             const float* in, const float* gamma, const float* mean,
                             const float* var, float eps, int64_t rows, int64_t c) {
  std::vector<double> inv_std(static_cast<size_t>(c));
  for (int64_t ch = 0; ch < c; ++ch)
    inv_std[static_cast<size_t>(ch)] = 1.0 / std::sqrt(static_cast<double>(var[ch]) + eps);
  if (dgamma || dbeta) {
    std::vector<double> sums;
    blocked_channel_sums(sums, 2, rows, c, [&](int64_t r0, int64_t r1, float* run) {
      add_grad_sums(run, dout, in, mean, r0, r1, c);
    });
    for (int64_t ch = 0; ch < c; ++ch) {
      const size_t u = static_cast<size_t>(ch);
      if (dbeta) dbeta[ch] += static_cast<float>(sums[u]);
      if (dgamma) dgamma[ch] += static_cast<float>(sums[static_cast<size_t>(c) + u] * inv_std[u]);
    }
  }
  if (!din) return;
  std::vector<float> scale(static_cast<size_t>(c));
  for (int64_t ch = 0; ch < c; ++ch)
    scale[static_cast<size_t>(ch)] = static_cast<float>(gamma[ch] * inv_std[static_cast<size_t>(ch)]);
  parallel_for(rows, std::max<int64_t>(1, kGrainFloats / c), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t ch = 0; ch < c; ++ch) din[r * c + ch] += dout[r * c + ch] * scale[static_cast<size_t>(ch)];
  });
}

}  // namespace qatc::nn
