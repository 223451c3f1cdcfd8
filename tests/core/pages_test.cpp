// release_pages: whole pages inside the range lose their content, the rest stays.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdint>
#include <vector>

#include "core/pages.h"

using namespace qatc;

TEST_CASE("release_pages: the whole pages inside the range read as zeros, partial pages at its ends keep their bytes") {
  const auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  std::vector<uint8_t> buf(8 * page, 7);
  // From 100 bytes into the buffer's first whole page to 100 bytes into its sixth.
  const auto base = reinterpret_cast<uintptr_t>(buf.data());
  const size_t first_page = (base + page - 1) / page * page - base;  // offset of the first whole page
  const size_t begin = first_page + 100, end = first_page + 5 * page + 100;
  release_pages(buf.data() + begin, end - begin);
  size_t zeros = 0;
  bool outside_kept = true, partial_kept = true;
  for (size_t i = 0; i < buf.size(); ++i) {
    const bool inside_whole = i >= first_page + page && i < first_page + 5 * page;
    if (inside_whole) zeros += buf[i] == 0 ? 1 : 0;
    else if (i >= begin && i < end) partial_kept = partial_kept && buf[i] == 7;
    else outside_kept = outside_kept && buf[i] == 7;
  }
#if defined(__linux__)
  CHECK(zeros == 4 * page);
#endif
  CHECK(partial_kept);
  CHECK(outside_kept);
  // Empty and sub-page ranges release nothing.
  std::vector<uint8_t> small(page / 2, 9);
  release_pages(small.data(), small.size());
  release_pages(small.data(), 0);
  for (uint8_t v : small) CHECK(v == 9);
  // The released pages are the caller's still: writable and readable.
  buf[first_page + 2 * page] = 5;
  CHECK(buf[first_page + 2 * page] == 5);
}
