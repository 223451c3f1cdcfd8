// Batch normalization over the last (channel) axis for float training, Keras semantics.
#pragma once

#include <cstdint>

#include "nn/activation.h"

namespace qatc::nn {

// in [rows,c] (rows = n*h*w), gamma [c], beta [c] -> out [rows,c], batch_mean [c], batch_var [c]
// batch_mean = mean over rows of in; batch_var = biased variance (divides by rows)
// out = gamma * (in - batch_mean) / sqrt(batch_var + eps) + beta
// Statistics are accumulated in double (over float runs of 16 rows, shifted by the first row),
// so large activation means lose no precision.
void batchnorm_forward_train(float* out, float* batch_mean, float* batch_var, const float* in,
                             const float* gamma, const float* beta, float eps, int64_t rows,
                             int64_t c);

// in [rows,c], gamma, beta, mean, var [c] -> out [rows,c]
// out = gamma * (in - mean) / sqrt(var + eps) + beta   (mean, var: the moving statistics)
void batchnorm_forward_eval(float* out, const float* in, const float* gamma, const float* beta,
                            const float* mean, const float* var, float eps, int64_t rows,
                            int64_t c);

// Inference with the scale computed once: in [rows,c], scale = gamma / sqrt(var + eps) (rounded
// to float from double, as batchnorm_forward_eval rounds it), beta, mean [c] -> out [rows,c]
// out = act((in - mean) * scale + beta); out may alias in. With act none it computes
// batchnorm_forward_eval's bits.
void batchnorm_apply(float* out, const float* in, const float* scale, const float* beta, const float* mean,
                     int64_t rows, int64_t c, Activation act);

// moving = moving * momentum + batch * (1 - momentum)   (Keras rule; Keras' default momentum 0.99)
void batchnorm_update_moving(float* moving_mean, float* moving_var, const float* batch_mean,
                             const float* batch_var, float momentum, int64_t c);

// dout, in [rows,c]; gamma, batch_mean, batch_var [c] -> din [rows,c], dgamma [c], dbeta [c]
// Forward: out = gamma * xhat + beta, xhat = (in - batch_mean) / sqrt(batch_var + eps), with
// batch_mean and batch_var computed from `in` itself, so the gradient flows through them:
// din = gamma / sqrt(batch_var + eps) * (dout - mean_rows(dout) - xhat * mean_rows(dout * xhat))
// Accumulates (+=) into din, dgamma and dbeta; each may be nullptr, meaning "not needed".
void batchnorm_backward(float* din, float* dgamma, float* dbeta, const float* dout, const float* in,
                        const float* gamma, const float* batch_mean, const float* batch_var,
                        float eps, int64_t rows, int64_t c);

// dout, in [rows,c]; gamma, mean, var [c] -> din [rows,c], dgamma [c], dbeta [c]
// Forward: out = gamma * (in - mean) / sqrt(var + eps) + beta with mean, var constants
// (inference mode, e.g. frozen BN during fine-tuning): din = dout * gamma / sqrt(var + eps).
// Accumulates (+=) into din, dgamma and dbeta; each may be nullptr, meaning "not needed".
void batchnorm_backward_eval(float* din, float* dgamma, float* dbeta, const float* dout,
                             const float* in, const float* gamma, const float* mean,
                             const float* var, float eps, int64_t rows, int64_t c);

}  // namespace qatc::nn
