// IDX reader: header checks, size guards and streaming reads through zlib (gz or plain).
#include "data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <vector>

#include <fmt/ranges.h>

#include "core/error.h"

namespace qatc::data {
namespace {

namespace fs = std::filesystem;

// 1 TiB of payload: far above any real IDX file, and low enough that products of the
// declared dims cannot overflow uint64 on the way there.
constexpr uint64_t kMaxPayloadBytes = uint64_t{1} << 40;
// Memory grows by at most this much (or by what was already read, whichever is larger) per
// step, so a forged header with a tiny file allocates little.
constexpr size_t kMinGrowBytes = size_t{1} << 20;

// One open IDX file. gzread reads gzip and plain files alike.
class IdxStream {
 public:
  IdxStream(const fs::path& path, std::string hint) : path_(path.string()), hint_(std::move(hint)) {
    std::error_code ec;
    fs::file_status st = fs::status(path, ec);
    if (!fs::exists(st)) fail("{}: file not found; check the path", path_);
    if (fs::is_directory(st)) fail("{}: is a folder, expected an IDX file", path_);
    errno = 0;
    file_ = gzopen(path_.c_str(), "rb");
    if (file_ == nullptr) {
      fail("{}: cannot open ({})", path_, errno ? std::strerror(errno) : "out of memory");
    }
    gzbuffer(file_, 1u << 18);
  }
  IdxStream(const IdxStream&) = delete;
  IdxStream& operator=(const IdxStream&) = delete;
  ~IdxStream() {
    if (file_ != nullptr) gzclose(file_);
  }

  const std::string& path() const { return path_; }
  const std::string& hint() const { return hint_; }

  // Reads up to n bytes; returns fewer only at the end of the data. A gzip stream that
  // stops early counts as the end of the data (the caller reports the missing bytes) and
  // is remembered, so a complete payload with a cut-off gzip trailer is still an error.
  size_t read(void* dst, size_t n) {
    auto* out = static_cast<unsigned char*>(dst);
    size_t done = 0;
    while (done < n && !eof_) {
      unsigned want = static_cast<unsigned>(std::min<size_t>(n - done, size_t{1} << 30));
      int got = gzread(file_, out + done, want);
      if (got < 0) {
        int errnum = Z_OK;
        const char* msg = gzerror(file_, &errnum);
        if (errnum == Z_BUF_ERROR) {  // zlib's "unexpected end of file"
          gzip_cut_ = true;
          eof_ = true;
          break;
        }
        if (errnum == Z_ERRNO) fail("{}: read error ({}); {}", path_, std::strerror(errno), hint_);
        fail("{}: corrupted gzip data ({}); {}", path_, msg ? msg : "unknown zlib error", hint_);
      }
      done += static_cast<size_t>(got);
      if (static_cast<unsigned>(got) < want) {
        // Short read: the end of the data. zlib flags a gzip stream that stops before its
        // trailer only through gzerror (Z_BUF_ERROR), not through the return value.
        int errnum = Z_OK;
        gzerror(file_, &errnum);
        if (errnum == Z_BUF_ERROR) gzip_cut_ = true;
        eof_ = true;
      }
    }
    return done;
  }

  // Reads the 4-byte magic and the big-endian dims; checks the format and that every dim
  // is positive. `kind` is "images" or "labels" (for messages).
  std::vector<uint64_t> read_header(int expect_ndims, const char* kind) {
    std::array<unsigned char, 4> magic{};
    size_t got = read(magic.data(), magic.size());
    if (got < magic.size()) {
      fail("{}: too short to be an IDX {} file ({} bytes); {}", path_, kind, got, hint_);
    }
    const auto expected_magic = fmt::format("00 00 08 {:02x}", expect_ndims);
    if (magic[0] != 0 || magic[1] != 0) {
      fail("{}: not an IDX file (starts with bytes {:02x} {:02x} {:02x} {:02x}, expected {}){}; {}",
           path_, magic[0], magic[1], magic[2], magic[3], expected_magic,
           gzip_like(magic) ? " - it looks gzipped twice" : "", hint_);
    }
    if (magic[2] != 0x08) {
      fail("{}: IDX element type 0x{:02x} is not supported (qatc reads unsigned bytes, type 0x08); {}",
           path_, magic[2], hint_);
    }
    if (magic[3] != expect_ndims) {
      const char* swapped = "";
      if (expect_ndims == 3 && magic[3] == 1) swapped = " - this is a labels file; are the images and labels paths swapped?";
      if (expect_ndims == 1 && magic[3] == 3) swapped = " - this is an images file; are the images and labels paths swapped?";
      fail("{}: IDX {} file must have {} dimensions, header says {}{}; {}", path_, kind, expect_ndims,
           magic[3], swapped, hint_);
    }
    std::vector<uint64_t> dims(static_cast<size_t>(expect_ndims));
    for (auto& d : dims) {
      std::array<unsigned char, 4> b{};
      if (read(b.data(), b.size()) < b.size()) {
        fail("{}: truncated IDX header (ends inside the dimensions); {}", path_, hint_);
      }
      d = (uint64_t{b[0]} << 24) | (uint64_t{b[1]} << 16) | (uint64_t{b[2]} << 8) | uint64_t{b[3]};
    }
    if (std::any_of(dims.begin(), dims.end(), [](uint64_t d) { return d == 0; })) {
      fail("{}: IDX header declares a zero dimension ({}); the file is empty or corrupted; {}", path_,
           fmt::join(dims, " x "), hint_);
    }
    uint64_t total = 1;
    for (uint64_t d : dims) {
      if (d > kMaxPayloadBytes / total) {
        fail("{}: IDX header declares {} {} ({}), more than 1 TiB of data; the header is corrupted; {}",
             path_, dims[0], kind, fmt::join(dims, " x "), hint_);
      }
      total *= d;
    }
    return dims;
  }

  // Reads exactly `expected` payload bytes and checks that nothing follows them.
  // `what` describes the payload for messages ("pixels for 60000 images of 28x28").
  std::vector<uint8_t> read_payload(uint64_t expected, const std::string& what) {
    std::vector<uint8_t> buf;
    size_t have = 0;
    while (have < expected) {
      size_t step = static_cast<size_t>(std::min<uint64_t>(expected - have, std::max(have, kMinGrowBytes)));
      buf.resize(have + step);
      size_t got = read(buf.data() + have, step);
      have += got;
      if (got < step) {
        fail("{}: truncated IDX file (expected {} bytes of {}, got {}{}); {}", path_, expected, what, have,
             gzip_cut_ ? ", the gzip stream is cut short" : "", hint_);
      }
    }
    uint64_t extra = 0;
    std::array<unsigned char, 1 << 16> sink{};
    for (size_t got; (got = read(sink.data(), sink.size())) > 0;) extra += got;
    if (extra > 0) {
      fail("{}: {} unexpected bytes after the {} bytes of {} declared in the IDX header; {}", path_, extra,
           expected, what, hint_);
    }
    if (gzip_cut_) fail("{}: truncated gzip file (the data is complete but the gzip trailer is missing); {}", path_, hint_);
    return buf;
  }

 private:
  static bool gzip_like(const std::array<unsigned char, 4>& m) { return m[0] == 0x1f && m[1] == 0x8b; }

  std::string path_;
  std::string hint_;
  gzFile file_ = nullptr;
  bool eof_ = false;
  bool gzip_cut_ = false;
};

}  // namespace

Dataset read_idx(const fs::path& images, const fs::path& labels, const std::string& name, int32_t classes,
                 const std::string& fix_hint) {
  QATC_CHECK_GT(classes, 0);
  const std::string hint = fix_hint.empty() ? "replace it with a complete, valid copy" : fix_hint;

  IdxStream img(images, hint);
  IdxStream lab(labels, hint);
  const std::vector<uint64_t> idims = img.read_header(3, "images");
  const std::vector<uint64_t> ldims = lab.read_header(1, "labels");
  if (idims[0] != ldims[0]) {
    fail("{}: holds {} images but {} holds {} labels; the two files must belong to the same split; {}",
         img.path(), idims[0], lab.path(), ldims[0], hint);
  }

  Dataset ds;
  ds.name = name;
  ds.n = static_cast<int64_t>(idims[0]);
  ds.h = static_cast<int64_t>(idims[1]);
  ds.w = static_cast<int64_t>(idims[2]);
  ds.c = 1;
  ds.classes = classes;

  const uint64_t n = idims[0];
  ds.images = img.read_payload(n * idims[1] * idims[2],
                               fmt::format("pixels for {} images of {}x{}", n, idims[1], idims[2]));
  std::vector<uint8_t> raw_labels = lab.read_payload(n, fmt::format("labels for {} images", n));

  ds.labels.resize(raw_labels.size());
  for (size_t i = 0; i < raw_labels.size(); ++i) {
    if (raw_labels[i] >= classes) {
      fail("{}: label {} at index {} is out of range for {} classes (0..{}); {}", lab.path(), raw_labels[i], i,
           classes, classes - 1, hint);
    }
    ds.labels[i] = raw_labels[i];
  }
  return ds;
}

}  // namespace qatc::data
