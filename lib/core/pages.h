// Handing memory pages back to the system while their buffer stays allocated.
#pragma once

#include <cstddef>

namespace qatc {

// The whole pages inside [begin, begin + bytes) leave the process's resident memory
// (madvise MADV_DONTNEED): the buffer stays allocated to its owner, but what those pages held
// is gone (they read as zeros). For a buffer its owner will not read again, only free: a
// layer's int8 weights as they are packed (runtime/executor.cpp), so that a large layer is
// never held twice. Bytes in partial pages at either end stay. A no-op where unsupported.
void release_pages(void* begin, std::size_t bytes);

}  // namespace qatc
