// Optimizers and learning-rate schedules.
#include "train/optimizer.h"

#include <cmath>

#include "core/threads.h"

namespace qatc::train {

Optimizer::Optimizer(const recipe::OptimizerSpec& spec, const nn::Graph& g)
    : spec_(spec), size_(g.param_floats) {
  for (const auto& p : g.params)
    if (p.trainable) ranges_.emplace_back(p.offset, p.offset + numel(p.shape));
  if (spec.type == recipe::OptimizerKind::sgd) {
    if (spec.momentum > 0) m_.assign(static_cast<size_t>(size_), 0.0f);
  } else {
    m_.assign(static_cast<size_t>(size_), 0.0f);
    v_.assign(static_cast<size_t>(size_), 0.0f);
  }
}

void Optimizer::step(float* params, const float* grads, double lr) {
  ++t_;
  const float flr = static_cast<float>(lr);
  const float wd = static_cast<float>(spec_.weight_decay);
  const auto type = spec_.type;
  const float mom = static_cast<float>(spec_.momentum);
  const bool nesterov = spec_.nesterov;
  const float b1 = static_cast<float>(spec_.beta1), b2 = static_cast<float>(spec_.beta2);
  const float eps = static_cast<float>(spec_.epsilon);
  // Bias corrections folded into the step size and epsilon added to sqrt(v) unscaled
  // ("epsilon hat" of Kingma & Ba), exactly as Keras' Adam does.
  const double c1 = 1.0 - std::pow(spec_.beta1, static_cast<double>(t_));
  const double c2 = 1.0 - std::pow(spec_.beta2, static_cast<double>(t_));
  const float alpha = static_cast<float>(lr * std::sqrt(c2) / c1);
  float* const m = m_.data();
  float* const v = v_.data();
  // One loop per optimizer, on local pointers (read through the closure they would be reloaded
  // after every store, and the loop would not vectorize).
  auto run = [&](auto&& update) {
    for (const auto& range : ranges_)
      parallel_for(range.second - range.first, 1 << 15, [&, begin = range.first](int64_t b, int64_t e) {
        float *p = params, *mm = m, *vv = v;
        const float* g = grads;
        for (int64_t i = begin + b; i < begin + e; ++i) update(p, mm, vv, g, i);
      });
  };
  switch (type) {
    case recipe::OptimizerKind::sgd:
      if (mom > 0)
        run([=](float* p, float* mm, float*, const float* g, int64_t i) {
          const float gi = g[i] + wd * p[i];
          mm[i] = mom * mm[i] + gi;
          p[i] -= flr * (nesterov ? gi + mom * mm[i] : mm[i]);
        });
      else
        run([=](float* p, float*, float*, const float* g, int64_t i) { p[i] -= flr * (g[i] + wd * p[i]); });
      break;
    case recipe::OptimizerKind::adam:
    case recipe::OptimizerKind::adamw: {
      const bool decoupled = type == recipe::OptimizerKind::adamw;
      run([=](float* p, float* mm, float* vv, const float* g, int64_t i) {
        const float gi = decoupled ? g[i] : g[i] + wd * p[i];
        mm[i] = b1 * mm[i] + (1 - b1) * gi;
        vv[i] = b2 * vv[i] + (1 - b2) * gi * gi;
        if (decoupled) p[i] -= flr * wd * p[i];
        p[i] -= alpha * mm[i] / (std::sqrt(vv[i]) + eps);
      });
      break;
    }
  }
}

void Optimizer::save(ByteWriter& w) const {
  w.put<uint32_t>(static_cast<uint32_t>(spec_.type));
  w.put<int64_t>(t_);
  w.put_vector(m_);
  w.put_vector(v_);
}

void Optimizer::load(ByteReader& r) {
  auto type = r.get<uint32_t>();
  if (type != static_cast<uint32_t>(spec_.type))
    fail("checkpoint optimizer state is for another optimizer type; resume with the recipe that made it");
  int64_t t = r.get<int64_t>();
  auto m = r.get_vector<float>();
  auto v = r.get_vector<float>();
  if (m.size() != m_.size() || v.size() != v_.size() || t < 0)
    fail("checkpoint optimizer state does not match this model; resume with the recipe that made it");
  t_ = t;
  m_ = std::move(m);
  v_ = std::move(v);
}

double learning_rate(const recipe::OptimizerSpec& opt, const recipe::ScheduleSpec& s, int64_t step,
                     int64_t total_steps, int64_t steps_per_epoch) {
  const double base = opt.lr;
  if (s.warmup_steps > 0 && step < s.warmup_steps) return base * static_cast<double>(step + 1) / s.warmup_steps;
  const int64_t after = step - s.warmup_steps;
  switch (s.type) {
    case recipe::ScheduleKind::constant: return base;
    case recipe::ScheduleKind::step: {
      const int64_t every = s.step_size > 0 ? s.step_size : std::max<int64_t>(1, steps_per_epoch);
      return base * std::pow(s.gamma, static_cast<double>(after / every));
    }
    case recipe::ScheduleKind::cosine: {
      const int64_t span = std::max<int64_t>(1, total_steps - s.warmup_steps);
      const double progress = std::min(1.0, static_cast<double>(after) / static_cast<double>(span));
      return s.min_lr + (base - s.min_lr) * 0.5 * (1.0 + std::cos(3.14159265358979323846 * progress));
    }
  }
  return base;
}

}  // namespace qatc::train
