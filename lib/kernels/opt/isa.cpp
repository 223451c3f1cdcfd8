// Run-time choice of the optimized kernels' instruction set.
#include "kernels/opt/isa.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include "core/error.h"

namespace qatc::opt {

namespace {

constexpr Isa kAll[] = {Isa::portable, Isa::avx2, Isa::avx_vnni, Isa::avx512_vnni, Isa::amx};

// AMX-TILE and AMX-INT8 (CPUID.(EAX=7, ECX=0):EDX bits 24 and 25), and Linux's permission to
// use the tile data state (XFEATURE_XTILEDATA = 18; requested once, for the whole process).
bool amx_usable() {
  static const bool ok = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || ((d >> 24) & 3u) != 3u) return false;
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return ok;
}

// -1: not chosen yet (detect on first use).
std::atomic<int> g_active{-1};

}  // namespace

const char* to_string(Isa isa) {
  switch (isa) {
    case Isa::portable: return "portable";
    case Isa::avx2: return "avx2";
    case Isa::avx_vnni: return "avx_vnni";
    case Isa::avx512_vnni: return "avx512_vnni";
    case Isa::amx: return "amx";
  }
  return "unknown";
}

Isa parse_isa(std::string_view name) {
  for (Isa isa : kAll)
    if (name == to_string(isa)) return isa;
  fail("unknown int8 kernel instruction set '{}': expected one of portable, avx2, avx_vnni, "
       "avx512_vnni, amx",
       name);
}

bool isa_supported(Isa isa) {
  __builtin_cpu_init();
  switch (isa) {
    case Isa::portable: return true;
    case Isa::avx2: return __builtin_cpu_supports("avx2");
    case Isa::avx_vnni: {
      // CPUID.(EAX=7, ECX=1):EAX bit 4; read directly, as clang 14's __builtin_cpu_supports
      // has no name for it. AVX2 support implies the OS saves the ymm registers.
      unsigned a = 0, b = 0, c = 0, d = 0;
      return __builtin_cpu_supports("avx2") && __get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 4) & 1u);
    }
    case Isa::avx512_vnni:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vnni");
    case Isa::amx: return isa_supported(Isa::avx512_vnni) && amx_usable();
  }
  return false;
}

Isa detect_isa() {
  // AVX-VNNI (256-bit) before AVX2, AVX-512 VNNI before both, AMX first: the widest
  // multiply-add wins.
  for (Isa isa : {Isa::amx, Isa::avx512_vnni, Isa::avx_vnni, Isa::avx2})
    if (isa_supported(isa)) return isa;
  return Isa::portable;
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> v;
  for (Isa isa : kAll)
    if (isa_supported(isa)) v.push_back(isa);
  return v;
}

void set_isa(Isa isa) {
  if (!isa_supported(isa)) {
    std::string have;
    for (Isa s : supported_isas()) have += std::string(have.empty() ? "" : ", ") + to_string(s);
    fail("int8 kernels '{}' are not supported by this CPU (supported: {})", to_string(isa), have);
  }
  g_active.store(static_cast<int>(isa));
}

Isa active_isa() {
  int v = g_active.load(std::memory_order_relaxed);
  if (v < 0) {
    v = static_cast<int>(detect_isa());
    int expected = -1;
    if (!g_active.compare_exchange_strong(expected, v)) v = expected;
  }
  return static_cast<Isa>(v);
}

}  // namespace qatc::opt
