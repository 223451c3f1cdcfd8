// Decoding, bad-image policy, parallel gather and the background batch prefetcher.
#include "data/image_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include <spdlog/spdlog.h>
#include <stb/stb_image.h>

#include "core/error.h"
#include "core/rng.h"
#include "core/threads.h"

namespace qatc::data {
namespace {

// Closes a file descriptor at scope exit.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Reads a whole file into buf. Returns false with *why set when it is larger than
// kMaxImageFileBytes; raises qatc::Error when it cannot be opened or read.
bool read_image_bytes(const std::string& path, std::vector<uint8_t>* buf, std::string* why) {
  // O_NONBLOCK: a FIFO under an image name must not block the open (regular files ignore it).
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (f.fd < 0) {
    fail("{}: cannot open the image ({}); check that it exists and is readable, or index the folder again", path,
         std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) fail("{}: cannot read the image ({})", path, std::strerror(errno));
  if (S_ISDIR(st.st_mode)) fail("{}: is a folder, expected an image file", path);
  if (!S_ISREG(st.st_mode)) {
    *why = "not a regular file";
    return false;
  }
  if (st.st_size > kMaxImageFileBytes) {
    *why = fmt::format("file is {} MiB, more than the {} MiB an image may have", st.st_size >> 20,
                       kMaxImageFileBytes >> 20);
    return false;
  }
  buf->resize(static_cast<size_t>(st.st_size));
  size_t have = 0;
  for (;;) {
    if (have == buf->size()) {
      // The file may have grown since fstat: read on until the end, within the limit.
      if (static_cast<int64_t>(have) >= kMaxImageFileBytes) {
        *why = fmt::format("file is more than the {} MiB an image may have", kMaxImageFileBytes >> 20);
        return false;
      }
      buf->resize(std::max<size_t>(4096, have * 2));
    }
    const ssize_t got = ::read(f.fd, buf->data() + have, buf->size() - have);
    if (got < 0) {
      if (errno == EINTR) continue;
      fail("{}: read error ({}); check the disk, or delete the file", path, std::strerror(errno));
    }
    if (got == 0) break;
    have += static_cast<size_t>(got);
  }
  buf->resize(have);
  return true;
}

const char* stb_reason() {
  const char* r = stbi_failure_reason();
  return r != nullptr ? r : "no reason given";
}

// stb_image 2.27 (Debian 12's libstb-dev) trusts the 16 code counts of a JPEG DHT segment: a sum
// above 256 makes stbi__build_huffman and the value loop write past their 257- and 256-byte
// tables into the rest of the decoder state (heap corruption from a damaged file; upstream added
// the n > 256 check later). JpegGuard walks the markers exactly as stb_image's decoder does
// (stbi__decode_jpeg_header, stbi__decode_jpeg_image, stbi__process_marker; bytes past the end
// read as 0, as stbi__get8 gives them) and reports such a table before stb_image sees the file.
// Where stb's walk depends on the entropy decoder, it checks every place stb could read a marker,
// so it never misses a table stb would build; it only gives up where stb itself stops.
class JpegGuard {
 public:
  JpegGuard(const uint8_t* p, size_t n) : p_(p), n_(n) {}

  // False (with *why) when stb_image would build a Huffman table from more than 256 codes.
  bool ok(std::string* why) {
    int m = marker();
    if (m != 0xD8) return true;  // no SOI: stb_image does not read it as a JPEG
    m = marker();
    // Header: markers up to the frame header; padding between segments is skipped.
    while (!(m == 0xC0 || m == 0xC1 || m == 0xC2)) {
      const Step s = segment(m);
      if (s == Step::bad) return report(why);
      if (s == Step::stop) return true;
      m = marker();
      while (m == kNone) {
        if (i_ >= n_) return true;
        m = marker();
      }
    }
    const int lf = get16();
    if (lf < 11) return true;
    skip(lf - 2);
    // Image: scans (each followed by its entropy-coded data) and table segments up to EOI.
    m = marker();
    while (m != 0xD9) {
      if (m == 0xDA) {
        const int ls = get16();
        if (ls < 8 || ls > 14) return true;  // stb accepts only 6 + 2 * (1..4)
        skip(ls - 2);
        // stb's entropy decoder stops at the first 0xFF followed by neither 0x00 (a stuffed byte)
        // nor 0xFF (fill) nor a restart marker 0xD0..0xD7 (it resumes after those), or earlier
        // when the scan is complete, and then takes the next 0xFF xx as the marker: the same one.
        m = kNone;
        while (i_ < n_) {
          if (get8() != 0xFF) continue;
          int c = get8();
          while (c == 0xFF) c = get8();
          if (c == 0 || (c >= 0xD0 && c <= 0xD7)) continue;
          m = c;
          break;
        }
        if (m == kNone) return true;
        continue;
      }
      if (m == 0xDC) {  // DNL
        skip(4);
      } else {
        const Step s = segment(m);
        if (s == Step::bad) return report(why);
        if (s == Step::stop) return true;
      }
      m = marker();
    }
    return true;
  }

 private:
  static constexpr int kNone = 0xFF;  // STBI__MARKER_none
  enum class Step { next, stop, bad };

  int get8() { return i_ < n_ ? p_[i_++] : 0; }
  int get16() {
    const int hi = get8();
    return (hi << 8) | get8();
  }
  void skip(int64_t k) { i_ = k < 0 ? n_ : std::min(n_, i_ + static_cast<size_t>(k)); }
  // stbi__get_marker: kNone unless the next byte is 0xFF; fill bytes 0xFF are skipped.
  int marker() {
    int x = get8();
    if (x != 0xFF) return kNone;
    while (x == 0xFF) x = get8();
    return x;
  }

  // One segment as stbi__process_marker reads it: next when stb goes on after it, stop where stb
  // returns (an error, or a marker it does not know), bad for an oversized Huffman table.
  Step segment(int m) {
    if (m == 0xDD) {  // DRI
      if (get16() != 4) return Step::stop;
      skip(2);
      return Step::next;
    }
    if (m == 0xDB) {  // DQT
      int len = get16() - 2;
      while (len > 0) {
        const int q = get8(), prec = q >> 4, t = q & 15;
        if (prec > 1 || t > 3) return Step::stop;
        skip(prec ? 128 : 64);
        len -= prec ? 129 : 65;
      }
      return len == 0 ? Step::next : Step::stop;
    }
    if (m == 0xC4) {  // DHT
      int len = get16() - 2;
      while (len > 0) {
        const int q = get8();
        if ((q >> 4) > 1 || (q & 15) > 3) return Step::stop;
        int count = 0;
        for (int k = 0; k < 16; ++k) count += get8();
        if (count > 256) {
          bad_count_ = count;
          return Step::bad;
        }
        skip(count);
        len -= 17 + count;
      }
      return len == 0 ? Step::next : Step::stop;
    }
    if ((m >= 0xE0 && m <= 0xEF) || m == 0xFE) {  // APPn, COM
      const int len = get16();
      if (len < 2) return Step::stop;
      skip(len - 2);
      return Step::next;
    }
    return Step::stop;
  }

  bool report(std::string* why) {
    *why = fmt::format("damaged JPEG (a Huffman table declares {} codes, at most 256 are possible)", bad_count_);
    return false;
  }

  const uint8_t* p_;
  size_t n_;
  size_t i_ = 0;
  int bad_count_ = 0;
};

}  // namespace

OnBadImage parse_on_bad_image(const std::string& name, const std::string& where) {
  if (name == "skip") return OnBadImage::skip;
  if (name == "fail") return OnBadImage::fail;
  fail("{}: unknown value '{}'; use skip (warn and use the next image instead) or fail (stop with an error)", where,
       name);
}

bool decode_image_file(const std::string& path, DecodedImage* out, std::string* why) {
  std::vector<uint8_t> bytes;
  if (!read_image_bytes(path, &bytes, why)) return false;
  if (bytes.empty()) {
    *why = "empty file";
    return false;
  }
  // Before any stb_image call: stbi_info parses the JPEG tables too.
  if (!JpegGuard(bytes.data(), bytes.size()).ok(why)) return false;
  const int len = static_cast<int>(bytes.size());  // <= 512 MiB
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(bytes.data(), len, &w, &h, &comp)) {
    *why = fmt::format("not a JPEG or PNG image ({})", stb_reason());
    return false;
  }
  if (w <= 0 || h <= 0 || static_cast<int64_t>(w) * h > kMaxImagePixels) {
    *why = fmt::format("image is {}x{}, more than the {} megapixels qatc decodes", w, h, kMaxImagePixels / 1000000);
    return false;
  }
  std::unique_ptr<uint8_t, void (*)(void*)> px(stbi_load_from_memory(bytes.data(), len, &w, &h, &comp, 3),
                                               stbi_image_free);
  if (!px) {
    *why = fmt::format("cannot decode the image ({})", stb_reason());
    return false;
  }
  out->h = h;
  out->w = w;
  out->rgb.assign(px.get(), px.get() + static_cast<int64_t>(w) * h * 3);
  return true;
}

ImageFolderSource::ImageFolderSource(ImageIndex index, int64_t out_h, int64_t out_w, Preprocess preprocess,
                                     bool augment, OnBadImage on_bad)
    : index_(std::move(index)), out_h_(out_h), out_w_(out_w), preprocess_(preprocess), augment_(augment),
      on_bad_(on_bad) {
  if (index_.files.empty()) fail("{}: no images to read; check the image folder", index_.name);
  QATC_CHECK_EQ(index_.files.size(), index_.labels.size());
  if (out_h_ <= 0 || out_w_ <= 0 || out_h_ > 16384 || out_w_ > 16384) {
    fail("{}: image size {}x{} is out of range; the model input must be between 1x1 and 16384x16384", index_.name,
         out_h_, out_w_);
  }
}

bool ImageFolderSource::known_bad(int64_t k) const {
  std::lock_guard<std::mutex> lk(bad_mu_);
  return bad_.count(k) > 0;
}

bool ImageFolderSource::mark_bad(int64_t k) const {
  std::lock_guard<std::mutex> lk(bad_mu_);
  return bad_.insert(k).second;
}

std::vector<int32_t> ImageFolderSource::bad_images() const {
  std::lock_guard<std::mutex> lk(bad_mu_);
  std::vector<int32_t> out;
  for (int64_t k : bad_) out.push_back(static_cast<int32_t>(k));
  std::sort(out.begin(), out.end());
  return out;
}

int32_t ImageFolderSource::load(int32_t index, float* x, uint64_t seed) const {
  const int64_t n = size();
  QATC_CHECK(index >= 0 && index < n);
  DecodedImage img;
  int64_t k = index;
  for (int64_t attempt = 0; attempt < n; ++attempt, k = (k + 1) % n) {
    if (known_bad(k)) continue;
    const std::string& path = index_.files[static_cast<size_t>(k)];
    std::string why;
    if (decode_image_file(path, &img, &why)) {
      if (augment_) {
        Rng rng(derive_seed(seed, kImageAugmentTag, static_cast<uint64_t>(index)));
        augment_image(img.rgb.data(), img.h, img.w, preprocess_, out_h_, out_w_, rng, x);
      } else {
        preprocess_image(img.rgb.data(), img.h, img.w, preprocess_, out_h_, out_w_, x);
      }
      return index_.labels[static_cast<size_t>(k)];
    }
    if (on_bad_ == OnBadImage::fail) {
      fail("{}: {}; delete or replace the file, or set on_bad_image: skip to use the next image in its place", path,
           why);
    }
    if (mark_bad(k)) {
      spdlog::warn("{}: {}; skipped: the next decodable image of {} is used in its place", path, why, index_.name);
    }
  }
  fail("{}: none of its {} images can be decoded (see the warnings above); check the image folder", index_.name, n);
}

void ImageFolderSource::gather(const int32_t* idx, int64_t n, float* x, int32_t* y, uint64_t seed) const {
  const int64_t per = example_floats();
  parallel_for(n, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = load(idx[i], x + i * per, seed);
  });
}

BatchPrefetcher::BatchPrefetcher(const ImageFolderSource& source, std::vector<int32_t> order, int64_t batch,
                                 uint64_t seed, int decode_threads)
    : source_(source), order_(std::move(order)), batch_(batch), seed_(seed),
      decode_threads_(std::max(1, decode_threads)) {
  QATC_CHECK_GT(batch_, 0);
  for (int32_t i : order_) QATC_CHECK(i >= 0 && i < source_.size());
  const auto total = static_cast<int64_t>(order_.size());
  batches_ = (total + batch_ - 1) / batch_;
  const int64_t rows = std::min(batch_, total);
  for (Slot* s : {&work_, &ready_}) {
    s->x.resize(static_cast<size_t>(rows * source_.example_floats()));
    s->y.resize(static_cast<size_t>(rows));
  }
  thread_ = std::thread([this] { run(); });
}

BatchPrefetcher::~BatchPrefetcher() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool BatchPrefetcher::fill(Slot& slot, int64_t k) {
  const int64_t begin = k * batch_;
  const int64_t n = std::min(batch_, static_cast<int64_t>(order_.size()) - begin);
  const int64_t per = source_.example_floats();
  slot.n = n;
  // Images [b, e) of the batch; returns the first exception instead of throwing.
  auto part = [&](int64_t b, int64_t e) -> std::exception_ptr {
    try {
      for (int64_t i = b; i < e && !stop_; ++i) {
        slot.y[static_cast<size_t>(i)] = source_.load(order_[static_cast<size_t>(begin + i)],
                                                      slot.x.data() + i * per, seed_);
      }
    } catch (...) {
      return std::current_exception();
    }
    return nullptr;
  };
  const int64_t parts = std::min<int64_t>(decode_threads_, n);
  const int64_t chunk = (n + parts - 1) / parts;
  std::vector<std::exception_ptr> errors(static_cast<size_t>(parts));
  std::vector<std::thread> helpers;
  for (int64_t p = 1; p < parts; ++p) {
    auto job = [&, p] { errors[static_cast<size_t>(p)] = part(p * chunk, std::min(n, (p + 1) * chunk)); };
    try {
      helpers.emplace_back(job);
    } catch (const std::system_error&) {
      job();  // no thread to be had: this one does the part
    }
  }
  errors[0] = part(0, std::min(n, chunk));
  for (auto& t : helpers) t.join();
  // The error of the earliest image in the batch, as a serial gather would raise it.
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
  return !stop_;
}

void BatchPrefetcher::run() {
  try {
    for (int64_t k = 0; k < batches_; ++k) {
      if (!fill(work_, k)) return;
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [this] { return !ready_full_ || stop_; });
      if (stop_) return;
      std::swap(work_, ready_);
      ready_full_ = true;
      lk.unlock();
      cv_.notify_all();
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      finished_ = true;
    }
    cv_.notify_all();
  } catch (...) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      error_ = std::current_exception();
    }
    cv_.notify_all();
  }
}

bool BatchPrefetcher::next(float* x, int32_t* y, int64_t* n) {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [this] { return ready_full_ || error_ || finished_; });
  if (!ready_full_) {
    *n = 0;
    if (error_) std::rethrow_exception(error_);
    return false;
  }
  lk.unlock();
  // The background thread leaves ready_ alone while ready_full_ is set.
  const int64_t count = ready_.n;
  std::memcpy(x, ready_.x.data(), static_cast<size_t>(count * source_.example_floats()) * sizeof(float));
  std::memcpy(y, ready_.y.data(), static_cast<size_t>(count) * sizeof(int32_t));
  *n = count;
  lk.lock();
  ready_full_ = false;
  lk.unlock();
  cv_.notify_all();
  return true;
}

}  // namespace qatc::data
