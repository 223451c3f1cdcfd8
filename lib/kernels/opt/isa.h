// Instruction-set selection of the optimized int8 kernels (qatc::opt). Every path computes
// the same integers as the reference kernels (qatc::ref), bit for bit; they differ only in
// speed. The best path the CPU supports is chosen at the first use; set_isa forces one (the
// CLI's --kernels flag).
#pragma once

#include <string_view>
#include <vector>

namespace qatc::opt {

enum class Isa {
  portable,     // plain C++ (the x86-64-v2 baseline): any CPU
  avx2,         // AVX2, int16 multiply-adds (vpmaddwd)
  avx_vnni,     // AVX2 + AVX-VNNI: vpdpbusd on 256-bit registers (Alder Lake, Zen 5, ...)
  avx512_vnni,  // AVX-512 F/BW/VL/DQ + VNNI: vpdpbusd on 512-bit registers
  amx,          // avx512_vnni + AMX-INT8: GEMMs on tile registers (tdpbusd, 16x16x64 per
                // instruction; Sapphire Rapids and later), everything else as avx512_vnni
};

// "portable", "avx2", "avx_vnni", "avx512_vnni", "amx".
const char* to_string(Isa isa);

// The inverse of to_string; throws qatc::Error naming the accepted values otherwise.
Isa parse_isa(std::string_view name);

// Whether this CPU (and OS) can run the path. For amx this asks Linux for the tile state
// permission (arch_prctl ARCH_REQ_XCOMP_PERM) once per process; without it, no amx.
bool isa_supported(Isa isa);

// The fastest supported path.
Isa detect_isa();

// The supported paths, slowest first (portable is always there).
std::vector<Isa> supported_isas();

// Forces a path for the kernels that follow (weights already packed keep the layout of the
// path they were packed for, see kernels.h). Throws qatc::Error if the CPU lacks it.
void set_isa(Isa isa);

// The path in use: the one set, else detect_isa().
Isa active_isa();

}  // namespace qatc::opt
