// The binary container shared by qatc's files (checkpoints, int8 models):
//   magic (8 bytes) | u32 format version | u32 section count |
//   per section: 4-byte tag, u64 length, bytes | u32 CRC-32 of everything before it.
// Little-endian. The reader checks magic, version, every length and the checksum before any
// section is trusted, so a truncated or bit-flipped file is rejected with one clear line.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace qatc {

struct Container {
  uint32_t version = 0;
  std::map<std::string, std::string> sections;  // tag (4 chars) -> payload

  bool has(const std::string& tag) const { return sections.count(tag) != 0; }
  // The payload of a required section; raises qatc::Error naming `what` when absent.
  const std::string& at(const std::string& tag, const std::string& what) const;
};

std::string pack_container(std::string_view magic, const Container& c);

// `what` names the file in messages; `kind` says what it should be ("checkpoint").
Container unpack_container(std::string_view bytes, std::string_view magic, uint32_t max_version,
                           const std::string& what, const std::string& kind);

}  // namespace qatc
