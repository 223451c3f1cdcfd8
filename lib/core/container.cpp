// Binary container with magic, version, sections and checksum.
#include "core/container.h"

#include "core/error.h"
#include "core/file.h"

namespace qatc {
namespace {

// Magic, size and version from the first bytes (head: up to magic + 4 of them) and the size.
uint32_t check_head(std::string_view head, uint64_t size, std::string_view magic, uint32_t max_version,
                    const std::string& what, const std::string& kind) {
  if (head.size() < magic.size() || head.substr(0, magic.size()) != magic)
    fail("{}: not a qatc {} (wrong magic bytes)", what, kind);
  if (size < magic.size() + 12) fail("{}: truncated {} ({} bytes); re-create it", what, kind, size);
  uint32_t version;
  std::memcpy(&version, head.data() + magic.size(), 4);
  if (version == 0 || version > max_version)
    fail("{}: {} format version {} is newer than this qatc reads (up to {}); upgrade qatc", what, kind, version,
         max_version);
  return version;
}

[[noreturn]] void missing_section(const std::string& what, const std::string& tag) {
  fail("{}: section '{}' is missing; the file is damaged or of another kind", what, tag);
}

[[noreturn]] void checksum_mismatch(const std::string& what, const std::string& kind) {
  fail("{}: checksum mismatch: the {} is truncated or corrupted; re-create it", what, kind);
}

}  // namespace

const std::string& Container::at(const std::string& tag, const std::string& what) const {
  auto it = sections.find(tag);
  if (it == sections.end()) missing_section(what, tag);
  return it->second;
}

std::string pack_container(std::string_view magic, const Container& c) {
  QATC_CHECK_EQ(magic.size(), 8u);
  ByteWriter w;
  w.put_raw(magic);
  w.put<uint32_t>(c.version);
  w.put<uint32_t>(static_cast<uint32_t>(c.sections.size()));
  for (const auto& [tag, payload] : c.sections) {
    QATC_CHECK_EQ(tag.size(), 4u);
    w.put_raw(tag);
    w.put<uint64_t>(payload.size());
    w.put_raw(payload);
  }
  std::string out = w.take();
  uint32_t crc = crc32_of(out);
  out.append(reinterpret_cast<const char*>(&crc), sizeof crc);
  return out;
}

ContainerReader::ContainerReader(std::string_view bytes, std::string_view magic, uint32_t max_version,
                                 std::string what, const std::string& kind)
    : bytes_(bytes), what_(std::move(what)) {
  version_ = check_head(bytes.substr(0, magic.size() + 4), bytes.size(), magic, max_version, what_, kind);
  uint32_t stored_crc;
  std::memcpy(&stored_crc, bytes.data() + bytes.size() - 4, 4);
  if (crc32_of(bytes.substr(0, bytes.size() - 4)) != stored_crc) checksum_mismatch(what_, kind);
  ByteReader r(bytes.substr(0, bytes.size() - 4), what_);
  read_directory(r, magic.size());
}

ContainerReader::ContainerReader(const std::filesystem::path& path, std::string_view magic, uint32_t max_version,
                                 const std::string& kind)
    : file_(std::make_unique<std::ifstream>(open_file(path))), what_(path.string()) {
  std::ifstream& in = *file_;
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(path, ec);
  if (ec) fail("{}: cannot read: {}", what_, ec.message());
  std::string head(std::min<uint64_t>(size, magic.size() + 4), '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  version_ = check_head(head, size, magic, max_version, what_, kind);
  // The checksum in one pass over the file, a block at a time.
  in.seekg(0);
  std::string block(size_t{1} << 16, '\0');
  uint32_t crc = 0;
  for (uint64_t left = size - 4; left > 0;) {
    const auto n = static_cast<size_t>(std::min<uint64_t>(left, block.size()));
    if (!in.read(block.data(), static_cast<std::streamsize>(n))) checksum_mismatch(what_, kind);  // it shrank
    crc = crc32_of(std::string_view(block.data(), n), crc);
    left -= n;
  }
  uint32_t stored_crc = 0;
  if (!in.read(reinterpret_cast<char*>(&stored_crc), 4) || crc != stored_crc) checksum_mismatch(what_, kind);
  in.seekg(0);
  ByteReader r(in, size - 4, what_);
  read_directory(r, magic.size());
}

void ContainerReader::read_directory(ByteReader& r, size_t magic_size) {
  r.skip(magic_size + 4);  // magic and version, checked
  const uint32_t count = r.get<uint32_t>();
  if (count > 4096) r.corrupt("too many sections");
  for (uint32_t i = 0; i < count; ++i) {
    std::string tag = r.get_bytes(4);
    const uint64_t len = r.get<uint64_t>();
    if (len > r.remaining()) r.corrupt("section '" + tag + "' runs past the end");
    sections_[tag] = {r.pos(), len};
    r.skip(len);
  }
  if (r.remaining() != 0) r.corrupt("trailing bytes");
}

std::vector<std::string> ContainerReader::tags() const {
  std::vector<std::string> t;
  for (const auto& s : sections_) t.push_back(s.first);
  return t;
}

ByteReader ContainerReader::section(const std::string& tag) {
  auto it = sections_.find(tag);
  if (it == sections_.end()) missing_section(what_, tag);
  const auto [offset, length] = it->second;
  if (!file_) return ByteReader(bytes_.substr(offset, length), what_);
  file_->clear();
  file_->seekg(static_cast<std::streamoff>(offset));
  return ByteReader(*file_, length, what_);
}

Container unpack_container(std::string_view bytes, std::string_view magic, uint32_t max_version,
                           const std::string& what, const std::string& kind) {
  ContainerReader cr(bytes, magic, max_version, what, kind);
  Container c;
  c.version = cr.version();
  for (const auto& tag : cr.tags()) {
    ByteReader r = cr.section(tag);
    c.sections[tag] = r.get_bytes(r.remaining());
  }
  return c;
}

}  // namespace qatc
