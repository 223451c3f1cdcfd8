// Progress display.
#include "train/progress.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

namespace qatc::train {

std::string format_duration(double s) {
  if (s < 0) s = 0;
  auto t = static_cast<int64_t>(s + 0.5);
  if (t < 60) return fmt::format("{}s", t);
  if (t < 3600) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}h{:02}m", t / 3600, (t % 3600) / 60);
}

ProgressDisplay::ProgressDisplay(std::string stage, int64_t epochs, int64_t steps_per_epoch)
    : stage_(std::move(stage)), epochs_(epochs), steps_per_epoch_(steps_per_epoch), tty_(::isatty(2) != 0) {
  start_ = epoch_start_ = last_draw_ = std::chrono::steady_clock::now();
}

double ProgressDisplay::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressDisplay::step(int64_t epoch, int64_t step_in_epoch, double loss, double acc, int64_t images_done) {
  if (!tty_) return;
  auto now = std::chrono::steady_clock::now();
  if (step_in_epoch != 1 && now - last_draw_ < std::chrono::milliseconds(100) && step_in_epoch != steps_per_epoch_)
    return;
  last_draw_ = now;
  const double es = std::chrono::duration<double>(now - epoch_start_).count();
  const double frac = static_cast<double>(step_in_epoch) / static_cast<double>(steps_per_epoch_);
  const int width = 24;
  const int filled = static_cast<int>(frac * width);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(width, '.');
  const double ips = es > 0 ? static_cast<double>(images_done) / es : 0.0;
  const double eta = frac > 0 ? es / frac - es : 0.0;
  std::fprintf(stderr, "\r%s epoch %lld/%lld [%s] %lld/%lld loss %.4f acc %.2f%% %.0f img/s ETA %s   ", stage_.c_str(),
               static_cast<long long>(epoch + 1), static_cast<long long>(epochs_), bar.c_str(),
               static_cast<long long>(step_in_epoch), static_cast<long long>(steps_per_epoch_), loss, 100 * acc, ips,
               format_duration(eta).c_str());
  std::fflush(stderr);
}

void ProgressDisplay::epoch_done(int64_t epoch, double loss, double acc, double images_per_s, double epoch_seconds,
                          int64_t epochs_left, const std::string& extra) {
  if (tty_) std::fprintf(stderr, "\r\033[K");
  const double eta = epoch_seconds * static_cast<double>(epochs_left);
  std::fprintf(stderr, "%s epoch %lld/%lld: loss %.4f acc %.2f%%%s | %.0f img/s, epoch %s, elapsed %s, ETA %s\n",
               stage_.c_str(), static_cast<long long>(epoch + 1), static_cast<long long>(epochs_), loss, 100 * acc,
               extra.c_str(), images_per_s, format_duration(epoch_seconds).c_str(), format_duration(elapsed()).c_str(),
               format_duration(eta).c_str());
  std::fflush(stderr);
  epoch_start_ = std::chrono::steady_clock::now();
}

}  // namespace qatc::train
