// The standard datasets qatc knows by name (MNIST, Fashion-MNIST): where their files live,
// how they are fetched on first use, and loading one split into a Dataset.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "recipe/recipe.h"

namespace qatc::data {

// Names accepted by load_dataset, in a fixed order: "mnist", "fashion_mnist".
std::vector<std::string> known_datasets();

// The folder qatc reads `dataset` from when the recipe gives no data.path: the first default
// folder that holds all four IDX files, or, when none does yet, the cache folder that a fetch
// writes into. Defaults, in order:
//   mnist:         $QATC_DATA_DIR/mnist if QATC_DATA_DIR is set, else
//                  ${XDG_CACHE_HOME:-$HOME/.cache}/qatc/mnist
//   fashion_mnist: $QATC_DATA_DIR/fashion_mnist (only when set and complete),
//                  /usr/share/datasets/fashion-mnist (Debian package dataset-fashion-mnist),
//                  then the cache folder as for mnist.
// Unknown names raise qatc::Error listing the known ones.
std::filesystem::path default_dataset_dir(const std::string& dataset);

// Loads split "train" or "test" of a known dataset. `path` is the recipe's data.path: the
// folder holding the IDX files (each plain or .gz); empty means the default folders above,
// and when the files are missing there they are fetched on first use by running
// `bash <datasets>/<dataset>/fetch.sh <cache folder>`. The script is looked up in
// $QATC_DATASETS_DIR, else next to the running binary (<exe dir>/../datasets,
// <exe dir>/datasets, <exe dir>/../share/qatc/datasets). Everything a user can get wrong
// (name, split, missing or damaged files, failed fetch) raises qatc::Error saying what to do.
// The result is named "<dataset>/<split>", e.g. "mnist/test".
Dataset load_dataset(const std::string& dataset, const std::string& split, const std::string& path);

// load_dataset(spec.dataset, split, spec.path), then spec.pad zero pixels added on every side
// of each image: the one way stages and evaluation load a recipe's data.
Dataset load_split(const recipe::DataSpec& spec, const std::string& split);

// Adds `pad` zero pixels on every side of every image.
void pad_images(Dataset& ds, int64_t pad);

}  // namespace qatc::data
