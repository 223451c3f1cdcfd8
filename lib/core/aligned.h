// An allocator for containers whose data must start on a 64-byte boundary (one cache line, one
// AVX-512 register), so that full-register loads never straddle two cache lines.
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace qatc {

template <class T>
struct Aligned64 {
  using value_type = T;
  static constexpr std::align_val_t kAlign{64};

  Aligned64() = default;
  template <class U>
  Aligned64(const Aligned64<U>&) {}

  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, kAlign); }

  template <class U>
  bool operator==(const Aligned64<U>&) const { return true; }
};

template <class T>
using AlignedVector = std::vector<T, Aligned64<T>>;

}  // namespace qatc
