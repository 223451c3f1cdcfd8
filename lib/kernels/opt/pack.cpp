// Weight packing of the optimized kernels (layouts in internal.h) and the instruction-set
// table lookup.
#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "kernels/check.h"
#include "kernels/opt/internal.h"
#include "kernels/opt/kernels.h"

namespace qatc::opt {

namespace detail {

const IsaOps& ops_for(Isa isa) {
  if (!isa_supported(isa))
    fail("int8 kernels '{}' are not supported by this CPU", to_string(isa));
  switch (isa) {
    case Isa::portable: return portable_ops();
    case Isa::avx2: return avx2_ops();
    case Isa::avx_vnni: return avx_vnni_ops();
    case Isa::avx512_vnni: return avx512_vnni_ops();
    case Isa::amx: return amx_ops();
  }
  return portable_ops();
}

}  // namespace detail

Isa gemm_isa(int64_t c, int64_t kh, int64_t kw, int64_t oc) {
  const Isa isa = active_isa();
  if (isa != Isa::amx) return isa;
  const bool narrow_expansion = kh == 1 && kw == 1 && c <= 32 && oc >= 64;
  return narrow_expansion || detail::row_groups_apply(c, kh, kw) ? Isa::avx512_vnni : isa;
}

namespace {

using detail::round_up;

// The per-channel arrays; bias_folded[oc] is already folded by the caller.
void fill_channels(PackedConv& w, const std::vector<int64_t>& bias_folded,
                   const int32_t* multiplier, const int32_t* shift) {
  const auto n = static_cast<size_t>(w.oc_padded);
  for (auto* v : {&w.bias, &w.multiplier, &w.shift, &w.left_shift, &w.right_shift, &w.round_mask,
                  &w.round_half, &w.fast_shift})
    v->assign(n, 0);
  w.any_left_shift = false;
  w.fast_requant = true;
  for (int64_t o = 0; o < w.oc; ++o) {
    const auto i = static_cast<size_t>(o);
    // |bias_folded| <= max |bias| + 255 * 128 * depth <= INT32_MAX by kernels::check.
    QATC_CHECK(bias_folded[i] >= INT32_MIN && bias_folded[i] <= INT32_MAX);
    w.bias[i] = static_cast<int32_t>(bias_folded[i]);
    w.multiplier[i] = multiplier[o];
    w.shift[i] = shift[o];
    const int32_t left = shift[o] > 0 ? shift[o] : 0;
    const int32_t right = shift[o] > 0 ? 0 : -shift[o];
    w.left_shift[i] = left;
    w.right_shift[i] = right;
    w.round_mask[i] = static_cast<int32_t>((int64_t{1} << right) - 1);
    w.round_half[i] = w.round_mask[i] >> 1;
    w.any_left_shift = w.any_left_shift || left > 0;
    if (detail::fast_requant_applies(multiplier[o], shift[o])) {
      w.fast_shift[i] = detail::fast_shift_of(multiplier[o], shift[o]);
    } else {
      w.fast_requant = false;
    }
  }
  // Padding channels (multiplier 0) compute 0 on either path.
  for (size_t i = static_cast<size_t>(w.oc); i < n; ++i) w.fast_shift[i] = 1;
  // Free what the kernels of this path will not read (a model with many narrow layers, such
  // as NASNet, holds several MB of these arrays): the vector paths read either the fast form
  // or the generic one, the portable path the multiplier and the shifts.
  const auto release = [](AlignedVector<int32_t>& v) { AlignedVector<int32_t>().swap(v); };
  if (w.isa == Isa::portable) {
    for (auto* v : {&w.round_mask, &w.round_half, &w.fast_shift}) release(*v);
  } else if (w.fast_requant) {
    for (auto* v : {&w.shift, &w.left_shift, &w.right_shift, &w.round_mask, &w.round_half}) release(*v);
  } else {
    for (auto* v : {&w.shift, &w.fast_shift}) release(*v);
  }
}

// weights [oc, k] row-major (conv OHWI flattened, or dense [out, in]).
PackedConv pack_gemm(PackedConv::Kind kind, int64_t c, int64_t kh, int64_t kw, int64_t oc,
                     const int8_t* weights, const int32_t* bias, const int32_t* multiplier,
                     const int32_t* shift, int32_t input_zero_point, const RowsPacked& rows_packed) {
  PackedConv w;
  w.kind = kind;
  w.isa = gemm_isa(c, kh, kw, oc);
  w.c = c;
  w.kh = kh;
  w.kw = kw;
  w.oc = oc;
  w.input_zero_point = input_zero_point;
  w.k = kh * kw * c;
  w.oc_padded = round_up(oc, 16);
  const int64_t k = w.k;
  std::vector<int64_t> bias_folded(static_cast<size_t>(oc));
  for (int64_t o = 0; o < oc; ++o) {
    int64_t sum = 0;
    for (int64_t i = 0; i < k; ++i) sum += weights[o * k + i];
    bias_folded[static_cast<size_t>(o)] = (bias != nullptr ? bias[o] : 0) - int64_t{input_zero_point} * sum;
  }
  const detail::Layout layout = detail::layout_of(w.isa);
  if (layout == detail::Layout::vnni_u8 || layout == detail::Layout::amx_s8) {
    const bool amx = layout == detail::Layout::amx_s8;
    if (!amx) {
      // u8 activations q + 128: sum (q + 128 - 128 - zp) w = sum (q + 128) w - (zp + 128) sum w.
      for (int64_t o = 0; o < oc; ++o) {
        int64_t sum = 0;
        for (int64_t i = 0; i < k; ++i) sum += weights[o * k + i];
        bias_folded[static_cast<size_t>(o)] -= 128 * sum;
      }
    }
    // Packed position kk -> original k (-1: a padding weight).
    w.row_groups = kind == PackedConv::Kind::conv2d && w.isa == Isa::avx512_vnni && detail::row_groups_apply(c, kh, kw);
    const int64_t seg = kw * c, segp = amx ? detail::amx_segment(seg) : w.row_groups ? round_up(seg, 4) : 0;
    w.k_padded = segp > 0 ? kh * segp : round_up(k, 4);
    auto source_k = [&](int64_t kk) -> int64_t {
      if (segp == 0) return kk < k ? kk : -1;
      const int64_t r = kk % segp;
      return r < seg ? kk / segp * seg + r : -1;
    };
    w.panel_oc = 64;
    w.panels = (oc + 63) / 64;
    const int64_t groups = w.k_padded / 4;
    // Full panels of 64 channels, then the last one only as wide as it is (nv * 16).
    const int64_t last_width = round_up(oc - 64 * (w.panels - 1), 16);
    // Grown panel by panel (within the reserved capacity: no reallocation), so that the
    // pages of a large layer become resident as the source's are released (rows_packed).
    w.weights.clear();
    w.weights.reserve(static_cast<size_t>(((w.panels - 1) * 64 + last_width) * w.k_padded));
    for (int64_t p = 0; p < w.panels; ++p) {
      const int64_t width = std::min<int64_t>(64, round_up(oc - 64 * p, 16));  // nv * 16
      w.weights.resize(w.weights.size() + static_cast<size_t>(width * w.k_padded), 0);
      int8_t* base = w.weights.data() + p * 64 * w.k_padded;
      for (int64_t g = 0; g < groups; ++g)
        for (int64_t t = 0; t < 4; ++t) {
          const int64_t i = source_k(4 * g + t);
          if (i < 0) continue;
          for (int64_t j = 0; j < width && 64 * p + j < oc; ++j)
            base[(g * width + j) * 4 + t] = weights[(64 * p + j) * k + i];
        }
      if (rows_packed) rows_packed(std::min(oc, 64 * (p + 1)));
    }
  } else if (detail::layout_of(w.isa) == detail::Layout::i16_rows) {
    w.k_padded = round_up(k, 8);
    w.panel_oc = 16;
    w.panels = (oc + 15) / 16;
    w.weights.assign(static_cast<size_t>(oc * w.k_padded * 2), 0);
    auto* w16 = reinterpret_cast<int16_t*>(w.weights.data());
    for (int64_t o = 0; o < oc; ++o)
      for (int64_t i = 0; i < k; ++i) w16[o * w.k_padded + i] = weights[o * k + i];
  } else {
    w.k_padded = round_up(k, 2);
    w.panel_oc = 16;
    w.panels = (oc + 15) / 16;
    const int64_t pairs = w.k_padded / 2;
    w.weights.assign(static_cast<size_t>(w.panels * 16 * w.k_padded * 2), 0);
    auto* w16 = reinterpret_cast<int16_t*>(w.weights.data());
    for (int64_t p = 0; p < w.panels; ++p)
      for (int64_t g = 0; g < pairs; ++g)
        for (int64_t j = 0; j < 16; ++j) {
          const int64_t o = 16 * p + j;
          if (o >= oc) continue;
          for (int64_t t = 0; t < 2; ++t) {
            const int64_t i = 2 * g + t;
            if (i < k) w16[((p * pairs + g) * 16 + j) * 2 + t] = weights[o * k + i];
          }
        }
  }
  fill_channels(w, bias_folded, multiplier, shift);
  return w;
}

const int8_t kDummy = 0;  // a non-null pointer for kernels::check's out/in arguments

}  // namespace

PackedConv pack_conv2d(const kernels::Conv2DParams& p, const RowsPacked& rows_packed) {
  kernels::check(p, &kDummy, &kDummy);
  return pack_gemm(PackedConv::Kind::conv2d, p.c, p.kh, p.kw, p.oc, p.weights, p.bias,
                   p.multiplier, p.shift, p.input_zero_point, rows_packed);
}

PackedConv pack_dense(const kernels::DenseParams& p, const RowsPacked& rows_packed) {
  kernels::check(p, &kDummy, &kDummy);
  return pack_gemm(PackedConv::Kind::dense, p.in_features, 1, 1, p.out_features, p.weights,
                   p.bias, p.multiplier, p.shift, p.input_zero_point, rows_packed);
}

PackedConv pack_depthwise(const kernels::DepthwiseConv2DParams& p) {
  kernels::check(p, &kDummy, &kDummy);
  PackedConv w;
  w.kind = PackedConv::Kind::depthwise;
  w.isa = active_isa();
  w.c = p.c;
  w.kh = p.kh;
  w.kw = p.kw;
  w.depth_multiplier = p.depth_multiplier;
  w.oc = p.c * p.depth_multiplier;
  w.input_zero_point = p.input_zero_point;
  w.k = p.kh * p.kw;
  w.k_padded = w.k;
  w.oc_padded = round_up(w.oc, 16);
  // [tap][oc_padded] int8; each call widens them for its kernels (conv.cpp).
  w.weights.assign(static_cast<size_t>(w.k * w.oc_padded), 0);
  std::vector<int64_t> bias_folded(static_cast<size_t>(w.oc));
  for (int64_t o = 0; o < w.oc; ++o) {
    int64_t sum = 0;
    for (int64_t t = 0; t < w.k; ++t) {
      const int8_t v = p.weights[t * w.oc + o];
      sum += v;
      w.weights[static_cast<size_t>(t * w.oc_padded + o)] = v;
    }
    // Padding positions enter as q = zp_in, so sum (q - zp) w = sum q w - zp sum w holds
    // over every tap.
    bias_folded[static_cast<size_t>(o)] =
        (p.bias != nullptr ? p.bias[o] : 0) - int64_t{p.input_zero_point} * sum;
  }
  fill_channels(w, bias_folded, p.multiplier, p.shift);
  if (const auto quad = detail::ops_for(w.isa).pack_depthwise_quad) quad(w);
  return w;
}

void mbqm_for_test(Isa isa, int32_t* out, const int32_t* x, const int32_t* multiplier,
                   const int32_t* shift, int64_t n) {
  detail::ops_for(isa).mbqm(out, x, multiplier, shift, n);
}

}  // namespace qatc::opt
