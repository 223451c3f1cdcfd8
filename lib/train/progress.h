// Human progress on stderr: a live bar on a terminal (rewritten in place, at most ~10 times
// a second), and one plain line per epoch always (what CI logs keep).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace qatc::train {

std::string format_duration(double seconds);  // "1m05s", "12s", "2h03m"

class ProgressDisplay {
 public:
  ProgressDisplay(std::string stage, int64_t epochs, int64_t steps_per_epoch);
  // Called after each step with running means of the epoch so far.
  void step(int64_t epoch, int64_t step_in_epoch, double loss, double acc, int64_t images_done);
  // Prints the epoch line; `extra` is appended (validation metrics).
  void epoch_done(int64_t epoch, double loss, double acc, double images_per_s, double epoch_seconds,
                  int64_t epochs_left, const std::string& extra);
  double elapsed() const;

 private:
  std::string stage_;
  int64_t epochs_, steps_per_epoch_;
  bool tty_;
  std::chrono::steady_clock::time_point start_, epoch_start_, last_draw_;
};

}  // namespace qatc::train
