// The training loop.
#include "train/trainer.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/rng.h"
#include "data/loader.h"
#include "nn/loss.h"
#include "report/metrics.h"
#include "train/evaluate.h"
#include "train/optimizer.h"
#include "train/progress.h"

namespace qatc::train {
namespace {

// Stream tags for derive_seed: each purpose draws from its own stream.
constexpr uint64_t kShuffleStream = 0x5AFF1E;
constexpr uint64_t kStepStream = 0x57E9;
constexpr uint64_t kAugmentStream = 0xA06;

void save_state(const LoopConfig& cfg, Trainable& model, const Optimizer& opt, const Progress& prog) {
  Checkpoint ck = make_checkpoint(model.graph(), CheckpointKind::train_state, cfg.recipe_yaml, model.params());
  ByteWriter w;
  opt.save(w);
  ck.optimizer = w.take();
  ck.progress = prog;
  ck.quant_state = model.save_state();
  save_checkpoint(cfg.state_path, ck);
}

}  // namespace

LoopResult train_loop(Trainable& model, const data::Source& src, const std::vector<int32_t>& train,
                      const std::vector<int32_t>& val, const LoopConfig& cfg, const std::filesystem::path& run_dir) {
  const nn::Graph& g = model.graph();
  const int64_t n_train = static_cast<int64_t>(train.size());
  const int64_t bs = cfg.batch_size;
  const int64_t steps_per_epoch = (n_train + bs - 1) / bs;
  const int64_t epochs = cfg.max_steps > 0 ? (cfg.max_steps + steps_per_epoch - 1) / steps_per_epoch : cfg.epochs;
  const int64_t total_steps = cfg.max_steps > 0 ? cfg.max_steps : steps_per_epoch * epochs;
  const int64_t classes = g.classes();
  const int64_t per = src.example_floats();

  Optimizer opt(cfg.optimizer, g);
  Progress prog;
  if (cfg.resume) {
    std::error_code ec;
    if (!std::filesystem::exists(cfg.state_path, ec))
      fail("--resume: no training state at {}; run without --resume to start from scratch", cfg.state_path.string());
    Checkpoint ck = load_checkpoint(cfg.state_path);
    if (ck.kind != CheckpointKind::train_state)
      fail("{}: not a resumable training state", cfg.state_path.string());
    check_matches(ck, g, cfg.state_path.string());
    ByteReader r(ck.optimizer, cfg.state_path.string());
    opt.load(r);
    model.params() = std::move(ck.params);
    model.load_state(ck.quant_state, cfg.state_path.string());
    prog = ck.progress;
    if (prog.epoch > epochs || (prog.epoch == epochs && prog.step_in_epoch > 0) ||
        prog.step_in_epoch > steps_per_epoch || prog.global_step != prog.epoch * steps_per_epoch + prog.step_in_epoch)
      fail("{}: its progress (epoch {}, step {}) does not fit this recipe's schedule ({} epochs of {} steps); "
           "resume with the same recipe, batch size and data",
           cfg.state_path.string(), prog.epoch, prog.step_in_epoch, epochs, steps_per_epoch);
    spdlog::info("{}: resuming from {} at epoch {} step {}", cfg.stage, cfg.state_path.string(), prog.epoch + 1,
                 prog.step_in_epoch);
  }

  ProgressDisplay display(cfg.stage, epochs, steps_per_epoch);
  std::vector<float> x(static_cast<size_t>(bs * per));
  std::vector<int32_t> y(static_cast<size_t>(bs));
  std::vector<float> dlogits(static_cast<size_t>(bs * classes));
  LoopResult result;
  const auto t_start = std::chrono::steady_clock::now();

  for (int64_t epoch = prog.epoch; epoch < epochs; ++epoch) {
    std::vector<int32_t> order = train;
    if (cfg.shuffle) {
      Rng rng(derive_seed(cfg.seed, kShuffleStream, static_cast<uint64_t>(epoch)));
      auto perm = rng.permutation(static_cast<int32_t>(n_train));
      for (int64_t i = 0; i < n_train; ++i) order[static_cast<size_t>(i)] = train[static_cast<size_t>(perm[static_cast<size_t>(i)])];
    }
    const auto t_epoch = std::chrono::steady_clock::now();
    double loss_sum = 0;
    int64_t correct = 0, seen = 0;
    // About 20 points per epoch of running loss and accuracy, for the report's curves.
    const int64_t curve_every = std::max<int64_t>(1, steps_per_epoch / 20);
    nlohmann::json curve = nlohmann::json::array();
    const int64_t first_step = epoch == prog.epoch ? prog.step_in_epoch : 0;
    const int64_t last_step = std::min(steps_per_epoch, total_steps - epoch * steps_per_epoch);
    // Batches from first_step on, augmented with a seed of (seed, epoch) and each example's index,
    // so a resumed epoch sees exactly the batches the uninterrupted one would have.
    auto batches = src.stream(std::vector<int32_t>(order.begin() + first_step * bs, order.end()), bs, true,
                              derive_seed(cfg.seed, kAugmentStream, static_cast<uint64_t>(epoch)));
    for (int64_t step = first_step; step < last_step; ++step) {
      int64_t n = 0;
      QATC_CHECK(batches->next(x.data(), y.data(), &n));
      const int64_t gstep = epoch * steps_per_epoch + step;
      std::memset(model.grads().data(), 0, model.grads().size() * sizeof(float));
      model.before_step(gstep);
      const float* logits = model.forward(x.data(), n, nn::Mode::train, derive_seed(cfg.seed, kStepStream, gstep));
      nn::LossResult lr = nn::softmax_xent(dlogits.data(), logits, y.data(), n, classes);
      const double loss = lr.loss_sum / static_cast<double>(n);
      if (!std::isfinite(loss))
        throw JobFailed(fmt::format(
            "{}: loss became {} at epoch {} step {}; stopped. The last good checkpoint is {}; lower "
            "{}.optimizer.lr or check the data",
            cfg.stage, loss, epoch + 1, step + 1, cfg.state_path.string(), cfg.stage));
      model.backward(dlogits.data());
      opt.step(model.params().data(), model.grads().data(),
               learning_rate(cfg.optimizer, cfg.schedule, gstep, total_steps, steps_per_epoch));
      loss_sum += lr.loss_sum;
      correct += lr.correct;
      seen += n;
      ++result.steps;
      if ((step + 1) % curve_every == 0 || step + 1 == last_step)
        curve.push_back({gstep + 1, loss_sum / static_cast<double>(seen),
                         static_cast<double>(correct) / static_cast<double>(seen)});
      display.step(epoch, step + 1, loss_sum / static_cast<double>(seen),
                   static_cast<double>(correct) / static_cast<double>(seen), seen);
      if (cfg.checkpoint_every_steps > 0 && (gstep + 1) % cfg.checkpoint_every_steps == 0 && step + 1 < last_step)
        save_state(cfg, model, opt, {epoch, step + 1, gstep + 1});
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_epoch).count();
    EpochSummary es{epoch + 1,
                    seen ? loss_sum / static_cast<double>(seen) : 0.0,
                    seen ? static_cast<double>(correct) / static_cast<double>(seen) : 0.0,
                    0.0,
                    0.0,
                    secs,
                    secs > 0 ? static_cast<double>(seen) / secs : 0.0};
    std::string extra;
    if (!val.empty()) {
      EvalResult v = evaluate(model, src, val, std::max<int64_t>(bs, 256));
      es.val_loss = v.loss;
      es.val_accuracy = v.accuracy;
      extra = fmt::format(", val_loss {:.4f} val_acc {:.2f}%", v.loss, 100 * v.accuracy);
    }
    display.epoch_done(epoch, es.loss, es.accuracy, es.images_per_s, secs, epochs - epoch - 1, extra);
    if (last_step == steps_per_epoch) save_state(cfg, model, opt, {epoch + 1, 0, (epoch + 1) * steps_per_epoch});
    else save_state(cfg, model, opt, {epoch, last_step, epoch * steps_per_epoch + last_step});
    nlohmann::json line = {{"stage", cfg.stage},       {"epoch", es.epoch},       {"loss", es.loss},
                           {"accuracy", es.accuracy}, {"seconds", es.seconds}, {"images_per_s", es.images_per_s},
                           {"steps", last_step - first_step}, {"curve", curve}};
    if (!val.empty()) {
      line["val_loss"] = es.val_loss;
      line["val_accuracy"] = es.val_accuracy;
    }
    report::append_metrics(run_dir, line);
    result.epochs.push_back(es);
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  return result;
}

}  // namespace qatc::train
