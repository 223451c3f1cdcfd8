// Conversion of a quantized checkpoint (PTQ or QAT) into the integer-only model: BatchNorm
// folded, weights quantized with the same function fake quantization used, int32 biases at
// scale s_in*s_w, per-channel multipliers s_in*s_w/s_out, activations folded into the clamp
// bounds. Everything the kernels need is computed here, once.
#pragma once

#include <filesystem>

#include "quant/quant_model.h"
#include "recipe/recipe.h"
#include "runtime/int_model.h"

namespace qatc::convert {

runtime::IntModel to_int_model(const quant::QuantModel& model, const recipe::Recipe& rc, const std::string& source);

// Loads a quantized checkpoint and converts it; raises qatc::Error when it is not quantized.
runtime::IntModel convert_checkpoint(const std::filesystem::path& ckpt);

}  // namespace qatc::convert
