// Logging setup.
#include "core/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace qatc {

void setup_logging(Verbosity v) {
  auto logger = spdlog::stderr_color_mt("qatc");
  logger->set_pattern("%^%l%$: %v");
  spdlog::set_default_logger(logger);
  switch (v) {
    case Verbosity::quiet: spdlog::set_level(spdlog::level::warn); break;
    case Verbosity::normal: spdlog::set_level(spdlog::level::info); break;
    case Verbosity::verbose: spdlog::set_level(spdlog::level::debug); break;
  }
}

}  // namespace qatc
