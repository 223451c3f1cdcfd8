// The one argument check per int8 op, shared by the ref and opt kernels (each kernel calls
// it first): sizes >= 1, geometry consistent, pointers set, zero points and clamp bounds in
// int8, multipliers normalized, and no int32 overflow possible in the accumulators.
// Failures throw qatc::InternalError naming the values (QATC_CHECK).
#pragma once

#include <cstdint>

#include "kernels/params.h"

namespace qatc::kernels {

// Channels::packed: everything but the per-channel arrays (bias, multiplier, shift, which may
// then be null): for a kernel that reads the copies a pack_* function made, after checking
// them with Channels::check.
enum class Channels { check, packed };

void check(const Conv2DParams& p, const int8_t* out, const int8_t* in, Channels ch = Channels::check);
void check(const DepthwiseConv2DParams& p, const int8_t* out, const int8_t* in, Channels ch = Channels::check);
void check(const DenseParams& p, const int8_t* out, const int8_t* in, Channels ch = Channels::check);
void check(const AddParams& p, const int8_t* out, const int8_t* a, const int8_t* b);
void check(const ConcatParams& p, const int8_t* out, const int8_t* const* inputs);
void check(const Pool2DParams& p, const int8_t* out, const int8_t* in);
void check(const PadParams& p, const int8_t* out, const int8_t* in);
void check(const GlobalAvgPoolParams& p, const int8_t* out, const int8_t* in);
void check(const QuantizeParams& p, const int8_t* out, const uint8_t* in, int64_t n);

}  // namespace qatc::kernels
