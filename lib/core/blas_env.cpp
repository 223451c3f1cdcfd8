// OpenBLAS kernel selection fix-up.
#include "core/blas_env.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>

extern "C" char* openblas_get_corename(void);

namespace qatc {

std::string blas_corename() {
  const char* n = openblas_get_corename();
  return n ? n : "";
}

std::string blas_coretype_correction() {
  if (std::getenv("OPENBLAS_CORETYPE")) return "";
  const std::string core = blas_corename();
  // Only the generic fallbacks are corrected; a recognized modern core is left alone.
  const bool fallback = core == "Prescott" || core == "Core2" || core == "Penryn" || core == "Nehalem" ||
                        core == "Dunnington" || core == "Atom" || core == "Katmai" || core == "Unknown";
  if (!fallback) return "";
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  return "";
}

void maybe_reexec_for_blas(char** argv) {
  if (std::getenv("QATC_BLAS_REEXEC")) return;  // already restarted once
  const std::string coretype = blas_coretype_correction();
  if (coretype.empty()) return;
  ::setenv("OPENBLAS_CORETYPE", coretype.c_str(), 1);
  ::setenv("QATC_BLAS_REEXEC", "1", 1);
  ::execv("/proc/self/exe", argv);
  // exec failed: carry on with the slower kernels.
  ::unsetenv("OPENBLAS_CORETYPE");
}

}  // namespace qatc
