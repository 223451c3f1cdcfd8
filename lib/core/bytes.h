// Little-endian binary encoding for qatc's file formats (checkpoints, int8 models).
// ByteReader, over bytes in memory or a stretch of a file, checks every read against the end
// and raises qatc::Error naming the file, so a truncated or corrupted file can never make a
// loader read out of bounds.
#pragma once

#include <cstdint>
#include <cstring>
#include <istream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/error.h"

namespace qatc {

class ByteWriter {
 public:
  template <typename T>
  void put(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    buf_.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  void put_string(std::string_view s) {
    put<uint64_t>(s.size());
    buf_.append(s);
  }
  template <typename T>
  void put_array(const T* p, size_t n) {
    static_assert(std::is_trivially_copyable_v<T>);
    put<uint64_t>(n);
    buf_.append(reinterpret_cast<const char*>(p), n * sizeof(T));
  }
  template <typename T>
  void put_vector(const std::vector<T>& v) { put_array(v.data(), v.size()); }
  void put_raw(std::string_view s) { buf_.append(s); }
  const std::string& bytes() const { return buf_; }
  std::string take() { return std::move(buf_); }

 private:
  std::string buf_;
};

class ByteReader {
 public:
  // Reads `bytes` in memory.
  ByteReader(std::string_view bytes, std::string what) : data_(bytes), size_(bytes.size()), what_(std::move(what)) {}
  // Reads the next `size` bytes of `in` (a file positioned at them) without holding them: a
  // vector is read straight into its own storage. `in` must outlive the reader, and nothing
  // else may read it meanwhile.
  ByteReader(std::istream& in, uint64_t size, std::string what) : in_(&in), size_(size), what_(std::move(what)) {}

  template <typename T>
  T get() {
    static_assert(std::is_trivially_copyable_v<T>);
    T v;
    read(&v, sizeof(T));
    return v;
  }
  std::string get_string(size_t max_len = 1u << 26) {
    uint64_t n = get<uint64_t>();
    if (n > max_len) corrupt("string length out of range");
    return get_bytes(n);
  }
  template <typename T>
  std::vector<T> get_vector(uint64_t max_count = UINT64_MAX) {
    uint64_t n = get<uint64_t>();
    if (n > max_count || n > remaining() / sizeof(T)) corrupt("array length out of range");
    std::vector<T> v(n);
    read(v.data(), n * sizeof(T));
    return v;
  }
  std::string get_bytes(size_t n) {
    need(n);
    std::string s(n, '\0');
    read(s.data(), n);
    return s;
  }
  void skip(uint64_t n) {
    need(n);
    if (in_ && !in_->seekg(static_cast<std::streamoff>(n), std::ios::cur)) corrupt("unexpected end of file");
    pos_ += n;
  }
  size_t remaining() const { return size_ - pos_; }
  size_t pos() const { return pos_; }
  [[noreturn]] void corrupt(const std::string& why) const {
    fail("{}: corrupted or truncated file ({} at byte {}); re-create it", what_, why, pos_);
  }

 private:
  void need(size_t n) const {
    if (n > remaining()) corrupt("unexpected end of data");
  }
  void read(void* dst, size_t n) {
    need(n);
    if (in_) {
      // The size came from the file's header: a file that shrank since is caught here.
      if (!in_->read(static_cast<char*>(dst), static_cast<std::streamsize>(n))) corrupt("unexpected end of file");
    } else if (n) {
      std::memcpy(dst, data_.data() + pos_, n);
    }
    pos_ += n;
  }
  std::string_view data_;
  std::istream* in_ = nullptr;
  size_t size_ = 0;
  size_t pos_ = 0;
  std::string what_;
};

}  // namespace qatc
