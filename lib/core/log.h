// Logging setup: human progress and logs go to stderr (spdlog); machine output to stdout.
#pragma once

namespace qatc {

enum class Verbosity { quiet, normal, verbose };
void setup_logging(Verbosity v);

}  // namespace qatc
