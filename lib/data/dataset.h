// An in-memory labelled image set: uint8 pixels in NHWC order plus one int32 label per image.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qatc::data {

struct Dataset {
  std::string name;            // e.g. "mnist/train"; used in logs and error messages
  int64_t n = 0, h = 0, w = 0, c = 0;
  int32_t classes = 0;         // every label is in [0, classes)
  std::vector<uint8_t> images; // n*h*w*c, NHWC
  std::vector<int32_t> labels; // n
};

}  // namespace qatc::data
