// Reader for IDX files (the MNIST / Fashion-MNIST format), gzipped or plain.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "data/dataset.h"

namespace qatc::data {

// Reads an IDX images file (magic 0x00000803: unsigned bytes, dims n x h x w) and its IDX
// labels file (magic 0x00000801: n unsigned bytes), each gzipped or plain. The result is
// NHWC with c = 1. Checks the magics, dims > 0, equal counts, exact file lengths (no
// missing or trailing bytes) and labels < classes; memory grows only as bytes actually
// arrive, so a forged header cannot make it allocate more than the file holds.
// Every failure raises qatc::Error: one line naming the file, what is wrong, and
// `fix_hint` (what to do; a generic "replace it with a complete copy" when empty).
Dataset read_idx(const std::filesystem::path& images, const std::filesystem::path& labels,
                 const std::string& name, int32_t classes, const std::string& fix_hint = {});

}  // namespace qatc::data
