// ImageNet-style folder indexing: class folders, flat folders with a labels file.
#include "data/image_folder.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <unordered_set>

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/file.h"

namespace qatc::data {
namespace {

namespace fs = std::filesystem;

constexpr const char* kLabelsFormat = "lines \"<file> <class index or folder name>\", as caffe's val.txt";

struct Listing {
  std::vector<std::string> dirs;    // non-hidden sub-folders, sorted
  std::vector<std::string> images;  // non-hidden files with an image extension, sorted
};

bool hidden(const std::string& name) { return !name.empty() && name[0] == '.'; }

// The sub-folders and image files of `dir` (names only), each sorted; symlinks are followed.
Listing list_folder(const fs::path& dir) {
  Listing out;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) fail("{}: cannot list the folder ({}); check its permissions", dir.string(), ec.message());
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const std::string name = it->path().filename().string();
    if (hidden(name)) continue;
    std::error_code tec;
    if (it->is_directory(tec)) {
      out.dirs.push_back(name);
    } else if (it->is_regular_file(tec) && is_image_file_name(name)) {
      out.images.push_back(name);
    }
  }
  if (ec) fail("{}: cannot list the folder ({}); check its permissions", dir.string(), ec.message());
  std::sort(out.dirs.begin(), out.dirs.end());
  std::sort(out.images.begin(), out.images.end());
  return out;
}

// Raises qatc::Error unless `dir` is an existing folder. `what` names it for the message, `hint`
// says what to do.
void require_folder(const fs::path& dir, const std::string& what, const std::string& hint) {
  std::error_code ec;
  fs::file_status st = fs::status(dir, ec);
  if (!fs::exists(st)) fail("{}: {} not found; {}", dir.string(), what, hint);
  if (!fs::is_directory(st)) fail("{}: is a file, expected the {}; {}", dir.string(), what, hint);
}

std::string lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

std::string dataset_name(const fs::path& root, const std::string& split) {
  fs::path r = fs::absolute(root).lexically_normal();
  if (r.filename().empty()) r = r.parent_path();
  std::string base = r.filename().string();
  if (base.empty()) base = "images";
  return base + "/" + split;
}

// Whitespace-separated tokens of one line.
std::vector<std::string_view> tokens(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t b = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > b) out.push_back(line.substr(b, i - b));
  }
  return out;
}

// The entries of a flat split read from its labels file, sorted by file name.
struct Labelled {
  std::string file;  // relative to the split folder
  int32_t label;     // without the background offset
};

std::vector<Labelled> read_labels_file(const fs::path& labels_path, const fs::path& split_dir,
                                       const Listing& split_listing, const std::vector<std::string>& class_names,
                                       const fs::path& train_dir, bool have_train) {
  std::error_code ec;
  fs::file_status st = fs::status(labels_path, ec);
  const std::string lp = labels_path.string();
  if (!fs::exists(st)) {
    fail("{}: labels file not found; labels_file is relative to the image folder and holds {}", lp, kLabelsFormat);
  }
  if (fs::is_directory(st)) fail("{}: is a folder, expected the labels file ({})", lp, kLabelsFormat);
  const std::string text = read_file(labels_path);

  std::unordered_set<std::string_view> present(split_listing.images.begin(), split_listing.images.end());
  std::unordered_map<std::string, int64_t> line_of;  // file -> line it was listed on
  std::vector<Labelled> out;
  const auto n_named = static_cast<int64_t>(class_names.size());
  int64_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::vector<std::string_view> tok = tokens(line);
    if (tok.empty() || tok[0][0] == '#') continue;
    if (tok.size() != 2) {
      fail("{}:{}: expected \"<file> <label>\", got \"{}\"; the labels file holds {}", lp, line_no, line,
           kLabelsFormat);
    }
    const std::string file(tok[0]);
    const std::string_view lab = tok[1];

    int64_t label = -1;
    const char* lb = lab.data();
    const char* le = lab.data() + lab.size();
    auto [p, err] = std::from_chars(lb, le, label);
    if (err == std::errc() && p == le) {
      if (label < 0 || (have_train && label >= n_named) || label > 1000000) {
        if (have_train) {
          fail("{}:{}: class index {} is out of range for the {} class folders of {} (0..{}); fix the line", lp,
               line_no, lab, n_named, train_dir.string(), n_named - 1);
        }
        fail("{}:{}: class index {} is out of range (0..1000000); fix the line", lp, line_no, lab);
      }
    } else if (err == std::errc::result_out_of_range) {
      fail("{}:{}: class index {} is out of range; fix the line", lp, line_no, lab);
    } else {
      auto it = std::lower_bound(class_names.begin(), class_names.end(), lab);
      if (!have_train || it == class_names.end() || *it != lab) {
        if (have_train) {
          fail("{}:{}: label \"{}\" is neither a class index nor a class folder of {}; fix the line", lp, line_no,
               lab, train_dir.string());
        }
        fail("{}:{}: label \"{}\" is not a class index (class names need the class folders of {}); fix the line",
             lp, line_no, lab, train_dir.string());
      }
      label = it - class_names.begin();
    }

    if (!present.count(file)) {
      std::error_code fec;
      if (!fs::is_regular_file(split_dir / file, fec)) {
        fail("{}:{}: image {} not found; put it there or remove the line", lp, line_no, (split_dir / file).string());
      }
    }
    auto [seen, inserted] = line_of.emplace(file, line_no);
    if (!inserted) {
      fail("{}:{}: {} is listed twice (first on line {}); remove one of the lines", lp, line_no, file, seen->second);
    }
    out.push_back({file, static_cast<int32_t>(label)});
  }
  if (out.empty()) fail("{}: lists no images; the labels file holds {}", lp, kLabelsFormat);

  std::sort(out.begin(), out.end(), [](const Labelled& a, const Labelled& b) { return a.file < b.file; });
  int64_t unlisted = 0;
  for (const auto& name : split_listing.images) unlisted += line_of.count(name) ? 0 : 1;
  if (unlisted > 0) {
    spdlog::warn("{}: {} image file(s) there are not listed in {}; they are not used", split_dir.string(), unlisted,
                 lp);
  }
  return out;
}

}  // namespace

bool is_image_file_name(const std::string& name) {
  const size_t dot = name.rfind('.');
  if (dot == std::string::npos || dot == 0) return false;
  const std::string ext = lower(name.substr(dot + 1));
  return ext == "jpeg" || ext == "jpg" || ext == "png";
}

ImageIndex index_image_folder(const fs::path& root, const ImageFolderOptions& options) {
  const std::string layout_hint =
      "the image folder holds train/ and val/ with one sub-folder per class (e.g. train/n01440764/*.JPEG)";
  require_folder(root, "image folder", layout_hint);
  if (options.split_dir.empty()) fail("{}: no split folder given; use \"train\" or \"val\"", root.string());

  const fs::path split = root / options.split_dir;
  const fs::path train = root / "train";
  {
    std::error_code ec;
    if (!fs::exists(split, ec)) {
      const Listing top = list_folder(root);
      fail("{}: split folder not found ({} holds {}); {}", split.string(), root.string(),
           top.dirs.empty() ? std::string("no sub-folders") : fmt::format("{}", fmt::join(top.dirs, ", ")),
           layout_hint);
    }
  }
  require_folder(split, fmt::format("folder of the {} split", options.split_dir), layout_hint);

  std::error_code ec;
  const bool have_train = fs::is_directory(train, ec);
  const Listing split_listing = list_folder(split);
  std::vector<std::string> class_names;
  if (have_train) {
    class_names = options.split_dir == "train" ? split_listing.dirs : list_folder(train).dirs;
    if (class_names.empty()) {
      fail("{}: no class folders; {}", train.string(), layout_hint);
    }
  }

  ImageIndex index;
  index.name = dataset_name(root, options.split_dir);
  if (!options.labels_file.empty()) {
    // Flat split with a labels file.
    const fs::path labels_path = root / options.labels_file;
    const std::vector<Labelled> entries =
        read_labels_file(labels_path, split, split_listing, class_names, train, have_train);
    int32_t max_label = 0;
    for (const auto& e : entries) {
      index.files.push_back((split / e.file).string());
      index.labels.push_back(e.label);
      max_label = std::max(max_label, e.label);
    }
    if (!have_train) {
      for (int32_t c = 0; c <= max_label; ++c) class_names.push_back(std::to_string(c));
      spdlog::warn("{}: {} not found, so the class count ({}) is the largest label in {} + 1 and classes have "
                   "no names; add the class folders of train/ to be sure",
                   index.name, train.string(), max_label + 1, labels_path.string());
    }
  } else {
    // One folder per class.
    if (!have_train) class_names = split_listing.dirs;
    if (split_listing.dirs.empty()) {
      if (!split_listing.images.empty()) {
        fail("{}: holds {} images but no class folders; sort them into one folder per class, or set labels_file "
             "to a file of {}",
             split.string(), split_listing.images.size(), kLabelsFormat);
      }
      fail("{}: no class folders and no images; {}", split.string(), layout_hint);
    }
    int64_t empty_classes = 0;
    for (const std::string& wnid : split_listing.dirs) {
      auto it = std::lower_bound(class_names.begin(), class_names.end(), wnid);
      if (it == class_names.end() || *it != wnid) {
        fail("{}: class folder not in {} (the classes are the class folders there); remove it or add it to train/",
             (split / wnid).string(), train.string());
      }
      const auto label = static_cast<int32_t>(it - class_names.begin());
      const fs::path dir = split / wnid;
      const Listing files = list_folder(dir);
      if (files.images.empty()) ++empty_classes;
      for (const std::string& f : files.images) {
        index.files.push_back((dir / f).string());
        index.labels.push_back(label);
      }
    }
    if (index.files.empty()) {
      fail("{}: no images in its {} class folders (image files end in .JPEG, .jpg, .jpeg or .png); {}",
           split.string(), split_listing.dirs.size(), layout_hint);
    }
    if (empty_classes > 0) {
      spdlog::warn("{}: {} of its {} class folders hold no images", split.string(), empty_classes,
                   split_listing.dirs.size());
    }
  }

  if (options.background_class) {
    class_names.insert(class_names.begin(), "background");
    for (auto& l : index.labels) l += 1;
  }
  index.class_names = std::move(class_names);
  index.classes = static_cast<int32_t>(index.class_names.size());
  spdlog::info("{}: {} images in {} classes from {}", index.name, index.files.size(), index.classes,
               split.string());
  return index;
}

}  // namespace qatc::data
