// Whole-file I/O. Every file qatc writes goes through write_file_atomic: written to a
// temporary name in the same folder, flushed, then renamed, so a crash never leaves a half
// file under a real name.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace qatc {

// Reads a whole file; raises qatc::Error naming the path when it cannot.
std::string read_file(const std::filesystem::path& path);
// Opens a file for binary reading; raises qatc::Error naming the path when it cannot.
std::ifstream open_file(const std::filesystem::path& path);

// Writes `bytes` to `path` atomically (tmp + fsync + rename). Creates parent folders.
// Raises qatc::JobFailed on I/O errors (disk full, permissions), leaving no temporary behind.
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);

// CRC-32 (zlib polynomial) of a byte range; `crc`: the CRC of the bytes before it, to compute
// one over several ranges.
uint32_t crc32_of(std::string_view bytes, uint32_t crc = 0);

}  // namespace qatc
