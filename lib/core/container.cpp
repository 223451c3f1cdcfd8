// Binary container with magic, version, sections and checksum.
#include "core/container.h"

#include "core/bytes.h"
#include "core/error.h"
#include "core/file.h"

namespace qatc {

const std::string& Container::at(const std::string& tag, const std::string& what) const {
  auto it = sections.find(tag);
  if (it == sections.end()) fail("{}: section '{}' is missing; the file is damaged or of another kind", what, tag);
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

Container unpack_container(std::string_view bytes, std::string_view magic, uint32_t max_version,
                           const std::string& what, const std::string& kind) {
  if (bytes.size() < magic.size() || bytes.substr(0, magic.size()) != magic)
    fail("{}: not a qatc {} (wrong magic bytes)", what, kind);
  if (bytes.size() < magic.size() + 12) fail("{}: truncated {} ({} bytes); re-create it", what, kind, bytes.size());
  ByteReader r(bytes.substr(0, bytes.size() - 4), what);
  r.get_raw(magic.size());
  Container c;
  c.version = r.get<uint32_t>();
  if (c.version == 0 || c.version > max_version)
    fail("{}: {} format version {} is newer than this qatc reads (up to {}); upgrade qatc", what, kind, c.version,
         max_version);
  uint32_t stored_crc;
  std::memcpy(&stored_crc, bytes.data() + bytes.size() - 4, 4);
  if (crc32_of(bytes.substr(0, bytes.size() - 4)) != stored_crc)
    fail("{}: checksum mismatch: the {} is truncated or corrupted; re-create it", what, kind);
  uint32_t count = r.get<uint32_t>();
  if (count > 4096) r.corrupt("too many sections");
  for (uint32_t i = 0; i < count; ++i) {
    std::string tag(r.get_raw(4));
    uint64_t len = r.get<uint64_t>();
    if (len > r.remaining()) r.corrupt("section '" + tag + "' runs past the end");
    c.sections[tag] = std::string(r.get_raw(len));
  }
  if (r.remaining() != 0) r.corrupt("trailing bytes");
  return c;
}

}  // namespace qatc
