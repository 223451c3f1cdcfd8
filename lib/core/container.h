// The binary container shared by qatc's files (checkpoints, int8 models):
//   magic (8 bytes) | u32 format version | u32 section count |
//   per section: 4-byte tag, u64 length, bytes | u32 CRC-32 of everything before it.
// Little-endian. The reader checks magic, version, every length and the checksum before any
// section is trusted, so a truncated or bit-flipped file is rejected with one clear line.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/bytes.h"

namespace qatc {

struct Container {
  uint32_t version = 0;
  std::map<std::string, std::string> sections;  // tag (4 chars) -> payload

  bool has(const std::string& tag) const { return sections.count(tag) != 0; }
  // The payload of a required section; raises qatc::Error naming `what` when absent.
  const std::string& at(const std::string& tag, const std::string& what) const;
};

std::string pack_container(std::string_view magic, const Container& c);

// A container read in place, section by section, from bytes in memory or from a file. A file
// is never held whole: its checksum is computed in one streaming pass, then each section is
// read from the file by the reader section() returns. Both check what unpack_container does.
class ContainerReader {
 public:
  // `what` names the source in messages; `kind` says what it should be ("int8 model").
  ContainerReader(std::string_view bytes, std::string_view magic, uint32_t max_version, std::string what,
                  const std::string& kind);
  ContainerReader(const std::filesystem::path& path, std::string_view magic, uint32_t max_version,
                  const std::string& kind);

  uint32_t version() const { return version_; }
  const std::string& what() const { return what_; }
  // The section tags (a tag given twice counts once, with its last payload).
  std::vector<std::string> tags() const;
  // A reader over the payload of a required section (raises naming the file when absent). From
  // a file, only the reader returned last may be used.
  ByteReader section(const std::string& tag);

 private:
  void read_directory(ByteReader& r, size_t magic_size);

  std::string_view bytes_;  // in memory, or empty when reading file_
  std::unique_ptr<std::ifstream> file_;
  std::string what_;
  uint32_t version_ = 0;
  std::map<std::string, std::pair<uint64_t, uint64_t>> sections_;  // tag -> offset, length
};

// The whole container in memory. `what` names the file in messages; `kind` says what it should
// be ("checkpoint").
Container unpack_container(std::string_view bytes, std::string_view magic, uint32_t max_version,
                           const std::string& what, const std::string& kind);

}  // namespace qatc
