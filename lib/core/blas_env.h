// OpenBLAS picks its kernels once, when the library loads, from the CPU it recognizes.
// Debian 12's OpenBLAS (0.3.21) does not know recent Intel and AMD server CPUs and falls back
// to its SSE3 "Prescott" kernels, several times slower than the AVX2/AVX-512 ones those CPUs
// run. qatc corrects this by restarting itself once with OPENBLAS_CORETYPE set; a value the
// user set is always respected.
#pragma once

#include <string>

namespace qatc {

// The OPENBLAS_CORETYPE qatc should run with, or "" when OpenBLAS's own choice is right
// (or the user chose). Reads OpenBLAS's selected core and this CPU's features.
std::string blas_coretype_correction();

// The kernel family OpenBLAS is using ("Haswell", "SkylakeX", ...), for logs and benchmarks.
std::string blas_corename();

// When a correction is due, sets OPENBLAS_CORETYPE and re-executes this program with the same
// arguments (once; never loops). Returns normally when nothing is to be done or exec fails.
void maybe_reexec_for_blas(char** argv);

}  // namespace qatc
