// Int8 model file: encoding and a loader that trusts nothing.
#include "runtime/int_model.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include "core/bytes.h"
#include "core/container.h"
#include "core/error.h"
#include "core/file.h"
#include "runtime/executor.h"

namespace qatc::runtime {
namespace {

constexpr std::string_view kMagic = "QATCINT8";
constexpr const char* kKind = "int8 model";
constexpr uint32_t kVersion = 2;  // 2: DAG layers (several inputs), depthwise, add, concat, pad
constexpr uint64_t kMaxTensors = 1 << 16;
constexpr int64_t kMaxElements = int64_t{1} << 31;

enum class Kind : uint32_t { conv = 1, pool = 2, global_pool = 3, reshape = 4, float_layer = 5, add = 6, concat = 7, pad = 8 };

void put_geom(ByteWriter& w, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t pt, int64_t pl) {
  for (int64_t v : {kh, kw, sh, sw, pt, pl}) w.put<int64_t>(v);
}

struct Geom {
  int64_t kh, kw, sh, sw, pt, pl;
};

Geom get_geom(ByteReader& r) {
  Geom g{r.get<int64_t>(), r.get<int64_t>(), r.get<int64_t>(), r.get<int64_t>(), r.get<int64_t>(), r.get<int64_t>()};
  if (g.kh < 1 || g.kw < 1 || g.kh > 4096 || g.kw > 4096 || g.sh < 1 || g.sw < 1 || g.sh > 4096 || g.sw > 4096 ||
      g.pt < 0 || g.pl < 0 || g.pt >= g.kh || g.pl >= g.kw)
    r.corrupt("layer geometry out of range");
  return g;
}

}  // namespace

const char* layer_kind(const IntLayer& l) {
  if (auto* c = std::get_if<ConvLayer>(&l.params))
    return c->kind == ConvKind::dense ? "dense" : c->kind == ConvKind::depthwise ? "depthwise_conv2d" : "conv2d";
  if (std::holds_alternative<AddLayer>(l.params)) return "add";
  if (std::holds_alternative<ConcatLayer>(l.params)) return "concat";
  if (std::holds_alternative<PadLayer>(l.params)) return "pad";
  if (auto* p = std::get_if<PoolLayer>(&l.params)) return p->max ? "maxpool" : "avgpool";
  if (std::holds_alternative<GlobalPoolLayer>(l.params)) return "global_avgpool";
  if (std::holds_alternative<ReshapeLayer>(l.params)) return "reshape";
  return std::get<FloatLayer>(l.params).dense ? "float dense" : "float conv2d";
}

int64_t layer_macs(const IntModel& m, const IntLayer& l) {
  const Shape& out = m.tensors[static_cast<size_t>(l.output)].shape;
  if (const auto* c = std::get_if<ConvLayer>(&l.params))
    return static_cast<int64_t>(c->weights.size()) * (c->kind == ConvKind::dense ? 1 : out[0] * out[1]);
  if (const auto* f = std::get_if<FloatLayer>(&l.params))
    return static_cast<int64_t>(f->weights.size()) * (f->dense ? 1 : out[0] * out[1]);
  return 0;
}

void save_int_model(const std::filesystem::path& path, const IntModel& m) {
  write_file_atomic(path, encode_int_model(m));
}

std::string encode_int_model(const IntModel& m) {
  Container c;
  c.version = kVersion;
  c.sections["RCPE"] = m.recipe_yaml;
  {
    ByteWriter w;
    w.put_string(m.source);
    w.put<double>(m.pixel_scale);
    w.put<int32_t>(m.pixel_zero_point);
    const auto& q = m.input_quant;
    for (int32_t v : {q.pixel_zero_point, q.output_zero_point, q.left_shift, q.multiplier, q.shift, q.qmin, q.qmax})
      w.put<int32_t>(v);
    w.put<int32_t>(m.output);
    c.sections["HEAD"] = w.take();
  }
  {
    ByteWriter w;
    w.put<uint64_t>(m.tensors.size());
    for (const auto& t : m.tensors) {
      w.put_string(t.name);
      w.put_vector(t.shape);
      w.put<double>(t.scale);
      w.put<int32_t>(t.zero_point);
      w.put<int32_t>(t.bits);
    }
    c.sections["TENS"] = w.take();
  }
  {
    ByteWriter w;
    w.put<uint64_t>(m.layers.size());
    for (const auto& l : m.layers) {
      w.put_string(l.name);
      w.put_vector(l.inputs);
      w.put<int32_t>(l.output);
      if (auto* cv = std::get_if<ConvLayer>(&l.params)) {
        w.put<uint32_t>(static_cast<uint32_t>(Kind::conv));
        w.put<uint32_t>(static_cast<uint32_t>(cv->kind));
        put_geom(w, cv->kh, cv->kw, cv->stride_h, cv->stride_w, cv->pad_top, cv->pad_left);
        w.put<int64_t>(cv->depth_multiplier);
        w.put_vector(cv->weights);
        w.put_vector(cv->bias);
        w.put_vector(cv->multiplier);
        w.put_vector(cv->shift);
        w.put<int32_t>(cv->qmin);
        w.put<int32_t>(cv->qmax);
        w.put<int32_t>(cv->weight_bits);
        w.put_vector(cv->weight_scales);
      } else if (auto* p = std::get_if<PoolLayer>(&l.params)) {
        w.put<uint32_t>(static_cast<uint32_t>(Kind::pool));
        w.put<uint8_t>(p->max);
        put_geom(w, p->kh, p->kw, p->stride_h, p->stride_w, p->pad_top, p->pad_left);
      } else if (auto* gp = std::get_if<GlobalPoolLayer>(&l.params)) {
        w.put<uint32_t>(static_cast<uint32_t>(Kind::global_pool));
        w.put<int32_t>(gp->left_shift);
        w.put<int32_t>(gp->multiplier);
        w.put<int32_t>(gp->shift);
      } else if (std::holds_alternative<ReshapeLayer>(l.params)) {
        w.put<uint32_t>(static_cast<uint32_t>(Kind::reshape));
      } else if (auto* a = std::get_if<AddLayer>(&l.params)) {
        w.put<uint32_t>(static_cast<uint32_t>(Kind::add));
        for (int32_t v : {a->left_shift, a->input1_multiplier, a->input1_shift, a->input2_multiplier, a->input2_shift,
                          a->output_multiplier, a->output_shift, a->qmin, a->qmax})
          w.put<int32_t>(v);
      } else if (auto* cc = std::get_if<ConcatLayer>(&l.params)) {
        w.put<uint32_t>(static_cast<uint32_t>(Kind::concat));
        w.put<uint64_t>(cc->inputs.size());
        for (const auto& in : cc->inputs) {
          w.put<int64_t>(in.channels);
          for (int32_t v : {in.zero_point, static_cast<int32_t>(in.copy), in.left_shift, in.multiplier, in.shift})
            w.put<int32_t>(v);
        }
      } else if (auto* pd = std::get_if<PadLayer>(&l.params)) {
        w.put<uint32_t>(static_cast<uint32_t>(Kind::pad));
        for (int64_t v : {pd->top, pd->bottom, pd->left, pd->right}) w.put<int64_t>(v);
      } else {
        const auto& f = std::get<FloatLayer>(l.params);
        w.put<uint32_t>(static_cast<uint32_t>(Kind::float_layer));
        w.put<uint8_t>(f.dense);
        put_geom(w, f.kh, f.kw, f.stride_h, f.stride_w, f.pad_top, f.pad_left);
        w.put_vector(f.weights);
        w.put_vector(f.bias);
        w.put<uint32_t>(static_cast<uint32_t>(f.activation));
      }
    }
    c.sections["LAYR"] = w.take();
  }
  return pack_container(kMagic, c);
}

bool is_int_model_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  char buf[8] = {};
  in.read(buf, 8);
  return in.gcount() == 8 && std::string_view(buf, 8) == kMagic;
}

namespace {

// The sections of an int8 model file, checked as they are read.
IntModel parse_sections(ContainerReader& c) {
  const std::string& what = c.what();
  IntModel m;
  {
    ByteReader r = c.section("RCPE");
    m.recipe_yaml = r.get_bytes(r.remaining());
  }
  {
    ByteReader r = c.section("TENS");
    const uint64_t n = r.get<uint64_t>();
    if (n == 0 || n > kMaxTensors) r.corrupt("tensor count");
    for (uint64_t i = 0; i < n; ++i) {
      QTensor t;
      t.name = r.get_string(4096);
      t.shape = r.get_vector<int64_t>(8);
      int64_t count = 1;
      for (int64_t d : t.shape) {
        if (d < 1 || d > kMaxElements) r.corrupt("tensor shape");
        count *= d;
        if (count > kMaxElements) r.corrupt("tensor size");
      }
      if (t.shape.empty()) r.corrupt("tensor shape");
      t.scale = r.get<double>();
      t.zero_point = r.get<int32_t>();
      t.bits = r.get<int32_t>();
      if (!(t.scale > 0) || !std::isfinite(t.scale) || t.zero_point < -128 || t.zero_point > 127 || t.bits < 2 ||
          t.bits > 8)
        r.corrupt("tensor quantization parameters");
      m.tensors.push_back(std::move(t));
    }
  }
  {
    ByteReader r = c.section("HEAD");
    m.source = r.get_string(64);
    m.pixel_scale = r.get<double>();
    m.pixel_zero_point = r.get<int32_t>();
    auto& q = m.input_quant;
    q.pixel_zero_point = r.get<int32_t>();
    q.output_zero_point = r.get<int32_t>();
    q.left_shift = r.get<int32_t>();
    q.multiplier = r.get<int32_t>();
    q.shift = r.get<int32_t>();
    q.qmin = r.get<int32_t>();
    q.qmax = r.get<int32_t>();
    m.output = r.get<int32_t>();
    if (!(m.pixel_scale > 0) || !std::isfinite(m.pixel_scale) || q.pixel_zero_point < 0 || q.pixel_zero_point > 255 ||
        q.output_zero_point < -128 || q.output_zero_point > 127 || q.left_shift < 0 || q.left_shift > 30 ||
        q.multiplier < 0 || q.shift < -31 || q.shift > 30 || q.qmin < -128 || q.qmax > 127 || q.qmin > q.qmax)
      r.corrupt("input quantization parameters");
    if (m.output < 0 || static_cast<size_t>(m.output) >= m.tensors.size()) r.corrupt("output tensor index");
  }
  {
    ByteReader r = c.section("LAYR");
    const uint64_t n = r.get<uint64_t>();
    if (n > kMaxTensors) r.corrupt("layer count");
    std::vector<bool> produced(m.tensors.size(), false);
    produced[0] = true;
    auto bad = [&](const std::string& layer, const std::string& why) {
      fail("{}: layer '{}': {}; the int8 model file is damaged, convert it again", what, layer, why);
    };
    for (uint64_t i = 0; i < n; ++i) {
      IntLayer l;
      l.name = r.get_string(4096);
      l.inputs = r.get_vector<int32_t>(1024);
      l.output = r.get<int32_t>();
      if (l.inputs.empty()) bad(l.name, "has no input");
      for (int32_t t : l.inputs) {
        if (t < 0 || static_cast<size_t>(t) >= m.tensors.size()) bad(l.name, "tensor index out of range");
        if (!produced[static_cast<size_t>(t)]) bad(l.name, "reads a tensor no earlier layer writes");
      }
      if (l.output < 0 || static_cast<size_t>(l.output) >= m.tensors.size()) bad(l.name, "tensor index out of range");
      if (produced[static_cast<size_t>(l.output)]) bad(l.name, "writes a tensor twice");
      produced[static_cast<size_t>(l.output)] = true;
      const Shape& in = m.tensors[static_cast<size_t>(l.inputs[0])].shape;
      const Shape& out = m.tensors[static_cast<size_t>(l.output)].shape;
      const auto kind = static_cast<Kind>(r.get<uint32_t>());
      const bool multi = kind == Kind::add || kind == Kind::concat;
      if (!multi && l.inputs.size() != 1) bad(l.name, "takes one input");
      auto check_window = [&](const Geom& g) {
        if (in.size() != 3 || out.size() != 3) bad(l.name, "needs [h, w, c] tensors");
        // Every window must start inside the padded input.
        if ((out[0] - 1) * g.sh - g.pt >= in[0] || (out[1] - 1) * g.sw - g.pl >= in[1])
          bad(l.name, "output larger than its input allows");
      };
      switch (kind) {
        case Kind::conv: {
          ConvLayer cv;
          const uint32_t ck = r.get<uint32_t>();
          if (ck > 2) bad(l.name, "unknown convolution kind");
          cv.kind = static_cast<ConvKind>(ck);
          Geom g = get_geom(r);
          cv.kh = g.kh, cv.kw = g.kw, cv.stride_h = g.sh, cv.stride_w = g.sw, cv.pad_top = g.pt, cv.pad_left = g.pl;
          cv.depth_multiplier = r.get<int64_t>();
          if (cv.depth_multiplier < 1 || cv.depth_multiplier > 4096 ||
              (cv.kind != ConvKind::depthwise && cv.depth_multiplier != 1))
            bad(l.name, "depth multiplier out of range");
          cv.weights = r.get_vector<int8_t>();
          cv.bias = r.get_vector<int32_t>();
          cv.multiplier = r.get_vector<int32_t>();
          cv.shift = r.get_vector<int32_t>();
          cv.qmin = r.get<int32_t>();
          cv.qmax = r.get<int32_t>();
          cv.weight_bits = r.get<int32_t>();
          cv.weight_scales = r.get_vector<double>();
          const bool dense = cv.kind == ConvKind::dense, dw = cv.kind == ConvKind::depthwise;
          const int64_t oc = out.back();
          const int64_t fan_in = dense ? numel(in) : dw ? cv.kh * cv.kw : cv.kh * cv.kw * in.back();
          if (dense && out.size() != 1) bad(l.name, "dense output must be flat");
          if (!dense) check_window(g);
          if (dw && oc != in.back() * cv.depth_multiplier) bad(l.name, "depthwise channels do not match");
          if (static_cast<int64_t>(cv.weights.size()) != oc * fan_in) bad(l.name, "weight count does not match shapes");
          if (static_cast<int64_t>(cv.bias.size()) != oc || static_cast<int64_t>(cv.multiplier.size()) != oc ||
              static_cast<int64_t>(cv.shift.size()) != oc || static_cast<int64_t>(cv.weight_scales.size()) != oc)
            bad(l.name, "per-channel array sizes do not match the output channels");
          for (int64_t k = 0; k < oc; ++k)
            if (cv.multiplier[static_cast<size_t>(k)] < 0 || cv.shift[static_cast<size_t>(k)] < -31 ||
                cv.shift[static_cast<size_t>(k)] > 30)
              bad(l.name, "multiplier or shift out of range");
          if (cv.qmin < -128 || cv.qmax > 127 || cv.qmin > cv.qmax || cv.weight_bits < 2 || cv.weight_bits > 8)
            bad(l.name, "clamp bounds or bits out of range");
          l.params = std::move(cv);
          break;
        }
        case Kind::pool: {
          PoolLayer p;
          p.max = r.get<uint8_t>() != 0;
          Geom g = get_geom(r);
          p.kh = g.kh, p.kw = g.kw, p.stride_h = g.sh, p.stride_w = g.sw, p.pad_top = g.pt, p.pad_left = g.pl;
          check_window(g);
          if (out[2] != in[2]) bad(l.name, "pooling changes the channel count");
          l.params = p;
          break;
        }
        case Kind::global_pool: {
          GlobalPoolLayer gp;
          gp.left_shift = r.get<int32_t>();
          gp.multiplier = r.get<int32_t>();
          gp.shift = r.get<int32_t>();
          if (in.size() != 3 || out.size() != 1 || out[0] != in[2]) bad(l.name, "global pool shapes");
          if (gp.left_shift < 0 || gp.left_shift > 30 || gp.multiplier < 0 || gp.shift < -31 || gp.shift > 30)
            bad(l.name, "multiplier or shift out of range");
          l.params = gp;
          break;
        }
        case Kind::reshape:
          if (numel(in) != numel(out)) bad(l.name, "reshape changes the element count");
          l.params = ReshapeLayer{};
          break;
        case Kind::add: {
          AddLayer a;
          for (int32_t* v : {&a.left_shift, &a.input1_multiplier, &a.input1_shift, &a.input2_multiplier,
                             &a.input2_shift, &a.output_multiplier, &a.output_shift, &a.qmin, &a.qmax})
            *v = r.get<int32_t>();
          if (l.inputs.size() != 2) bad(l.name, "add takes two inputs");
          for (int32_t t : l.inputs)
            if (m.tensors[static_cast<size_t>(t)].shape != out) bad(l.name, "add shapes differ");
          l.params = a;
          break;
        }
        case Kind::concat: {
          ConcatLayer cc;
          const uint64_t k = r.get<uint64_t>();
          if (k != l.inputs.size() || k < 2) bad(l.name, "concat input count");
          int64_t channels = 0;
          for (uint64_t j = 0; j < k; ++j) {
            kernels::ConcatInput ci{};
            ci.channels = r.get<int64_t>();
            ci.zero_point = r.get<int32_t>();
            ci.copy = r.get<int32_t>() != 0;
            ci.left_shift = r.get<int32_t>();
            ci.multiplier = r.get<int32_t>();
            ci.shift = r.get<int32_t>();
            const Shape& s_in = m.tensors[static_cast<size_t>(l.inputs[j])].shape;
            if (s_in.size() != out.size() || s_in.back() != ci.channels ||
                !std::equal(s_in.begin(), s_in.end() - 1, out.begin()))
              bad(l.name, "concat shapes do not match");
            channels += ci.channels;
            cc.inputs.push_back(ci);
          }
          if (channels != out.back()) bad(l.name, "concat channels do not add up");
          l.params = std::move(cc);
          break;
        }
        case Kind::pad: {
          PadLayer pd;
          for (int64_t* v : {&pd.top, &pd.bottom, &pd.left, &pd.right}) {
            *v = r.get<int64_t>();
            if (*v < -kMaxElements || *v > 4096) bad(l.name, "pad amounts out of range");
          }
          if (in.size() != 3 || out.size() != 3 || out[0] != in[0] + pd.top + pd.bottom ||
              out[1] != in[1] + pd.left + pd.right || out[2] != in[2])
            bad(l.name, "pad shapes do not match");
          l.params = pd;
          break;
        }
        case Kind::float_layer: {
          FloatLayer f;
          f.dense = r.get<uint8_t>() != 0;
          Geom g = get_geom(r);
          f.kh = g.kh, f.kw = g.kw, f.stride_h = g.sh, f.stride_w = g.sw, f.pad_top = g.pt, f.pad_left = g.pl;
          f.weights = r.get_vector<float>();
          f.bias = r.get_vector<float>();
          const uint32_t act = r.get<uint32_t>();
          if (act > 2) bad(l.name, "unknown activation");
          f.activation = static_cast<FloatActivation>(act);
          const int64_t oc = out.back();
          const int64_t fan_in = f.dense ? numel(in) : f.kh * f.kw * in.back();
          if (!f.dense) check_window(g);
          if (static_cast<int64_t>(f.weights.size()) != oc * fan_in || static_cast<int64_t>(f.bias.size()) != oc)
            bad(l.name, "weight count does not match shapes");
          l.params = std::move(f);
          break;
        }
        default: bad(l.name, "unknown layer kind");
      }
      m.layers.push_back(std::move(l));
    }
    if (r.remaining() != 0) r.corrupt("trailing bytes in layers");
    if (!produced[static_cast<size_t>(m.output)]) fail("{}: no layer writes the output tensor; convert again", what);
  }
  check_kernels(m, what);
  return m;
}

}  // namespace

IntModel load_int_model(const std::filesystem::path& path) {
  ContainerReader c(path, kMagic, kVersion, kKind);
  return parse_sections(c);
}

IntModel parse_int_model(std::string_view bytes, const std::string& what) {
  ContainerReader c(bytes, kMagic, kVersion, what, kKind);
  return parse_sections(c);
}

}  // namespace qatc::runtime
