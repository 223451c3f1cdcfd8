// Indexing an ImageNet-style image folder: which files belong to a split and their labels.
//
// Layout (root = the folder given as data.path):
//
//   root/train/<wnid>/*.JPEG        one folder per class; the sorted folder names are the classes
//   root/val/<wnid>/*.JPEG          the same class folders (e.g. after valprep.sh), or
//   root/val/*.JPEG + labels file   a flat folder with a labels file (e.g. caffe's val.txt)
//
// Classes are the sorted names of the class folders of root/train, for every split, so that
// class indices agree between train and val. When root/train does not exist, the sorted class
// folders of the split itself are the classes (a val-only copy of ImageNet in class folders has
// all 1000). Sorting is by byte value (std::string order), as Python's sorted() on ASCII names,
// so n01440764 is class 0 as in torchvision's ImageFolder and Keras.
//
// Images are the files whose extension is .jpeg, .jpg or .png in any letter case. Hidden
// entries (names starting with '.', e.g. macOS "._x.JPEG" files or ".ipynb_checkpoints") and
// other files are ignored. Files are sorted by class, then by name, so the index is the same on
// every machine and file system.
//
// A labels file has one image per line: "<file> <label>", separated by spaces or tabs, where
// <file> is relative to the split folder and <label> is a class index (0-based, over the classes
// without background, as caffe's val.txt) or a class folder name (wnid). Blank lines and lines
// starting with '#' are skipped. Images of the folder that the labels file does not list are not
// used (a warning gives their number). When the split is flat and root/train does not exist, the
// labels must be indices, and the class count is the largest index + 1 (a warning says so).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace qatc::data {

struct ImageFolderOptions {
  std::string split_dir = "train";  // the split's folder under the root: "train" or "val" (any name works)
  // Optional: for a flat split folder, the labels file (lines "<file> <label>", as caffe's
  // val.txt). A relative path is relative to the root. Empty: the split has class folders.
  std::string labels_file;
  // Adds class 0 = "background" as TF-slim's ImageNet models have: every label shifts by 1 and
  // ImageNet has 1001 classes.
  bool background_class = false;
};

struct ImageIndex {
  std::string name;                      // "<root folder name>/<split>", e.g. "imagenet/val"
  std::vector<std::string> files;        // full paths, sorted by (class, name) or by name (flat)
  std::vector<int32_t> labels;           // one per file, in [0, classes)
  std::vector<std::string> class_names;  // wnids; "background" first with background_class
  int32_t classes = 0;                   // == class_names.size()
};

// Indexes split options.split_dir of the ImageNet-style folder `root` (see above). Everything a
// user can get wrong raises qatc::Error with one line naming the folder or file (and the line
// number of a labels file) and what to do: the root or split folder missing or not a folder, no
// class folders, a class folder of the split that root/train lacks, a split without images, a
// flat split without a labels file, a labels file that is missing, a labels line that is
// malformed, names a missing image, an image listed twice, or a label out of range.
ImageIndex index_image_folder(const std::filesystem::path& root, const ImageFolderOptions& options);

// True when `name` ends in .jpeg, .jpg or .png (any case): the files index_image_folder takes.
bool is_image_file_name(const std::string& name);

}  // namespace qatc::data
