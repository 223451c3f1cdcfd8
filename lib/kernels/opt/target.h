// Compiling one region of a file for an instruction set, with g++ and clang alike:
//   QATC_TARGET_BEGIN("avx2,fma") ... QATC_TARGET_END
// Every function defined in between (inline ones from headers included before it are not) is
// built for that target, so no wider instruction leaks into code the rest of the program
// shares; the file is still compiled for the x86-64-v2 baseline.
#pragma once

#define QATC_PRAGMA(x) _Pragma(#x)
#if defined(__clang__)
#define QATC_TARGET_BEGIN(t) QATC_PRAGMA(clang attribute push(__attribute__((target(t))), apply_to = function))
#define QATC_TARGET_END QATC_PRAGMA(clang attribute pop)
#else
#define QATC_TARGET_BEGIN(t) QATC_PRAGMA(GCC push_options) QATC_PRAGMA(GCC target(t))
#define QATC_TARGET_END QATC_PRAGMA(GCC pop_options)
#endif
