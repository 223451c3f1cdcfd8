// Little-endian binary encoding for qatc's file formats (checkpoints, int8 models).
// ByteReader checks every read against the buffer end and raises qatc::Error naming the
// file, so a truncated or corrupted file can never make a loader read out of bounds.
#pragma once

#include <cstdint>
#include <cstring>
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
  ByteReader(std::string_view bytes, std::string what) : data_(bytes), what_(std::move(what)) {}

  template <typename T>
  T get() {
    static_assert(std::is_trivially_copyable_v<T>);
    need(sizeof(T));
    T v;
    std::memcpy(&v, data_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string get_string(size_t max_len = 1u << 26) {
    uint64_t n = get<uint64_t>();
    if (n > max_len) corrupt("string length out of range");
    need(n);
    std::string s(data_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  template <typename T>
  std::vector<T> get_vector(uint64_t max_count = UINT64_MAX) {
    uint64_t n = get<uint64_t>();
    if (n > max_count || n > remaining() / sizeof(T)) corrupt("array length out of range");
    std::vector<T> v(n);
    if (n) std::memcpy(v.data(), data_.data() + pos_, n * sizeof(T));
    pos_ += n * sizeof(T);
    return v;
  }
  std::string_view get_raw(size_t n) {
    need(n);
    auto s = data_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  size_t remaining() const { return data_.size() - pos_; }
  size_t pos() const { return pos_; }
  [[noreturn]] void corrupt(const std::string& why) const {
    fail("{}: corrupted or truncated file ({} at byte {}); re-create it", what_, why, pos_);
  }

 private:
  void need(size_t n) const {
    if (n > remaining()) corrupt("unexpected end of data");
  }
  std::string_view data_;
  size_t pos_ = 0;
  std::string what_;
};

}  // namespace qatc
