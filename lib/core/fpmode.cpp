// FTZ/DAZ for the calling thread.
#include "core/fpmode.h"

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace qatc {

void set_flush_denormals() {
#if defined(__x86_64__) || defined(__i386__)
  // MXCSR bit 15: flush to zero; bit 6: denormals are zero.
  _mm_setcsr(_mm_getcsr() | 0x8040u);
#endif
}

}  // namespace qatc
