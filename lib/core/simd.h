// Elementwise loops worth more than the x86-64-v2 baseline's 4-float vectors are compiled for
// AVX-512, AVX2 and the baseline, the best chosen at load time (GCC/Clang function
// multi-versioning). Only for loops whose results do not depend on the instruction set: no
// operation the wider targets could contract (a*b + c into an FMA) or reassociate.
#pragma once

#define QATC_SIMD_CLONES [[gnu::target_clones("avx512f", "avx2", "default")]]
