// Throughput of single AVX-512 instructions (zmm), the cost model behind the int8 kernels'
// output stages (docs/performance.md, "The depthwise kernel on vpdpbusd").
//
//   bench_vector_ops [--seconds S]
//
// Each instruction runs in 12 independent chains (one register each, so latency does not
// limit it), 12 per loop iteration; the figure is instructions per second, best of 3 runs, and
// the same relative to vpaddd (the cheapest: its rate is the machine's rate of 512-bit
// operations). Pairs alternate two instructions, to tell whether they share an execution port.
// Needs AVX-512 VNNI; prints a line and exits 0 without it.
// GCC 12's headers trip -Wmaybe-uninitialized on _mm512_undefined_epi32 (as in isa_amx.cpp).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

#define QATC_TARGET __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
#define R12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define INIT(i) __m512i v##i = _mm512_set1_epi32(i + 1);
#define KEEP                                                                              \
  asm volatile("" : "+v"(v0), "+v"(v1), "+v"(v2), "+v"(v3), "+v"(v4), "+v"(v5));          \
  asm volatile("" : "+v"(v6), "+v"(v7), "+v"(v8), "+v"(v9), "+v"(v10), "+v"(v11));
// One timing function per instruction: n iterations of 12 instances, instructions per second.
#define OP(NAME, EXPR)                                                                     \
  QATC_TARGET double NAME(long n) {                                                       \
    [[maybe_unused]] const __m512i c = _mm512_set1_epi32(3);                              \
    R12(INIT)                                                                              \
    const auto t0 = std::chrono::steady_clock::now();                                     \
    for (long it = 0; it < n; ++it) {                                                     \
      R12(EXPR)                                                                            \
      KEEP                                                                                 \
    }                                                                                      \
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); \
    KEEP                                                                                   \
    return static_cast<double>(n) * 12.0 / s;                                             \
  }

#define E_add(i) v##i = _mm512_add_epi32(v##i, c);
#define E_muldq(i) v##i = _mm512_mul_epi32(v##i, c);
#define E_mullo(i) v##i = _mm512_mullo_epi32(v##i, c);
#define E_dpbusd(i) v##i = _mm512_dpbusd_epi32(v##i, c, c);
#define E_dpwssd(i) v##i = _mm512_dpwssd_epi32(v##i, c, c);
#define E_srav(i) v##i = _mm512_srav_epi32(v##i, c);
#define E_srai(i) v##i = _mm512_srai_epi32(v##i, 3);
#define E_shufd(i) v##i = _mm512_shuffle_epi32(v##i, _MM_PERM_DDBB);
#define E_permd(i) v##i = _mm512_permutexvar_epi32(c, v##i);
#define E_maxd(i) v##i = _mm512_max_epi32(v##i, c);
#define E_cmpq(i) v##i = _mm512_mask_add_epi64(v##i, _mm512_cmplt_epi64_mask(v##i, c), v##i, c);
#define E_packs(i) v##i = _mm512_packs_epi32(v##i, c);
#define E_adds16(i) v##i = _mm512_adds_epi16(v##i, c);
#define E_pmovsxbd(i) v##i = _mm512_cvtepi8_epi32(_mm512_castsi512_si128(v##i));
#define E_pmovdb(i) v##i = _mm512_zextsi128_si512(_mm512_cvtepi32_epi8(v##i));
#define E_sra_max(i) v##i = ((i) & 1) ? _mm512_srai_epi32(v##i, 3) : _mm512_max_epi32(v##i, c);
#define E_sra_shuf(i) v##i = ((i) & 1) ? _mm512_srai_epi32(v##i, 3) : _mm512_shuffle_epi32(v##i, _MM_PERM_DDBB);
#define E_add_sra(i) v##i = ((i) & 1) ? _mm512_add_epi32(v##i, c) : _mm512_srai_epi32(v##i, 3);
OP(op_add, E_add)
OP(op_muldq, E_muldq)
OP(op_mullo, E_mullo)
OP(op_dpbusd, E_dpbusd)
OP(op_dpwssd, E_dpwssd)
OP(op_srav, E_srav)
OP(op_srai, E_srai)
OP(op_shufd, E_shufd)
OP(op_permd, E_permd)
OP(op_maxd, E_maxd)
OP(op_cmpq, E_cmpq)
OP(op_packs, E_packs)
OP(op_adds16, E_adds16)
OP(op_pmovsxbd, E_pmovsxbd)
OP(op_pmovdb, E_pmovdb)
OP(op_sra_max, E_sra_max)
OP(op_sra_shuf, E_sra_shuf)
OP(op_add_sra, E_add_sra)

struct Op {
  const char* name;
  double (*run)(long);
};

}  // namespace

int main(int argc, char** argv) {
  double seconds = 0.2;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: bench_vector_ops [--seconds S]\n");
      return 2;
    }
  }
  if (!__builtin_cpu_supports("avx512vnni") || !__builtin_cpu_supports("avx512bw")) {
    std::printf("bench_vector_ops: this CPU lacks AVX-512 VNNI; nothing to measure\n");
    return 0;
  }
  const Op ops[] = {{"vpaddd", op_add},
                    {"vpmuldq", op_muldq},
                    {"vpmulld", op_mullo},
                    {"vpdpbusd", op_dpbusd},
                    {"vpdpwssd", op_dpwssd},
                    {"vpsravd", op_srav},
                    {"vpsrad imm", op_srai},
                    {"vpshufd", op_shufd},
                    {"vpermd", op_permd},
                    {"vpmaxsd", op_maxd},
                    {"vpcmpq + masked vpaddq (2)", op_cmpq},
                    {"vpackssdw", op_packs},
                    {"vpaddsw", op_adds16},
                    {"vpmovsxbd", op_pmovsxbd},
                    {"vpmovdb", op_pmovdb},
                    {"vpsrad / vpmaxsd alternating", op_sra_max},
                    {"vpsrad / vpshufd alternating", op_sra_shuf},
                    {"vpaddd / vpsrad alternating", op_add_sra}};
  // Iterations for about `seconds` per run, from a short calibration on vpaddd.
  const double rate = op_add(1000000) / 12.0;
  const long n = std::max(1000L, static_cast<long>(rate * seconds));
  double add_rate = 0;
  std::printf("%-32s %12s %10s\n", "instruction (zmm)", "G/s", "vs vpaddd");
  for (const Op& op : ops) {
    double best = 0;
    for (int r = 0; r < 3; ++r) best = std::max(best, op.run(n));
    if (add_rate == 0) add_rate = best;
    std::printf("%-32s %12.2f %10.2f\n", op.name, best / 1e9, best / add_rate);
  }
  return 0;
}
