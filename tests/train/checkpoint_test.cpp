// Checkpoints round-trip exactly and every kind of damage is a clear qatc::Error.
#include <doctest/doctest.h>

#include <filesystem>

#include "core/file.h"
#include "fixtures/tiny.h"
#include "nn/graph.h"
#include "train/checkpoint.h"

using namespace qatc;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("qatc_ckpt_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string error_of(const fs::path& p) {
  try {
    train::load_checkpoint(p);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("checkpoint: round trip is exact") {
  nn::Graph g = nn::build_graph(testing::tiny_recipe().model);
  std::vector<float> p(static_cast<size_t>(g.param_floats));
  nn::init_params(g, p.data(), 9);
  fs::path d = temp_dir("rt");
  train::Checkpoint ck = train::make_checkpoint(g, train::CheckpointKind::train_state, "name: x\n", p);
  ck.optimizer = "opaque";
  ck.progress = {2, 3, 17};
  train::save_checkpoint(d / "a.ckpt", ck);
  train::Checkpoint back = train::load_checkpoint(d / "a.ckpt");
  CHECK(back.params == p);
  CHECK(back.recipe_yaml == "name: x\n");
  CHECK(back.optimizer == "opaque");
  CHECK(back.progress.global_step == 17);
  CHECK(back.table == ck.table);
  train::check_matches(back, g, "a.ckpt");
  // No temporary file is left behind.
  int files = 0;
  for (const auto& e : fs::directory_iterator(d)) files += e.is_regular_file();
  CHECK(files == 1);
  fs::remove_all(d);
}

TEST_CASE("checkpoint: truncation, bit flips, wrong magic and newer versions are rejected") {
  nn::Graph g = nn::build_graph(testing::tiny_recipe().model);
  std::vector<float> p(static_cast<size_t>(g.param_floats), 0.5f);
  fs::path d = temp_dir("bad");
  train::save_checkpoint(d / "good.ckpt", train::make_checkpoint(g, train::CheckpointKind::float_model, "x", p));
  const std::string bytes = read_file(d / "good.ckpt");

  write_file_atomic(d / "trunc.ckpt", bytes.substr(0, bytes.size() / 2));
  CHECK(error_of(d / "trunc.ckpt").find("trunc.ckpt: checksum mismatch") != std::string::npos);
  write_file_atomic(d / "tiny.ckpt", bytes.substr(0, 10));
  CHECK(error_of(d / "tiny.ckpt").find("tiny.ckpt: truncated") != std::string::npos);
  for (size_t pos : {size_t{9}, size_t{20}, bytes.size() / 2, bytes.size() - 2}) {
    std::string flipped = bytes;
    flipped[pos] = static_cast<char>(flipped[pos] ^ 0x10);
    write_file_atomic(d / "flip.ckpt", flipped);
    CAPTURE(pos);
    CHECK(error_of(d / "flip.ckpt").find("flip.ckpt: ") != std::string::npos);
  }
  write_file_atomic(d / "magic.ckpt", "NOTACKPT" + bytes.substr(8));
  CHECK(error_of(d / "magic.ckpt").find("not a qatc checkpoint") != std::string::npos);
  std::string newer = bytes;
  newer[8] = 99;  // version field; the checksum is checked after the version
  write_file_atomic(d / "newer.ckpt", newer);
  CHECK(error_of(d / "newer.ckpt").find("newer than this qatc reads") != std::string::npos);
  CHECK(error_of(d / "missing.ckpt").find("file not found") != std::string::npos);
  fs::remove_all(d);
}

TEST_CASE("checkpoint: a checkpoint of another model is named as such") {
  nn::Graph g = nn::build_graph(testing::tiny_recipe().model);
  nn::Graph other = nn::build_graph(testing::tiny_recipe({"model.layers.0.filters=6"}).model);
  std::vector<float> p(static_cast<size_t>(g.param_floats), 0.5f);
  train::Checkpoint ck = train::make_checkpoint(g, train::CheckpointKind::float_model, "x", p);
  try {
    train::check_matches(ck, other, "m.ckpt");
    FAIL("expected an error");
  } catch (const Error& e) {
    std::string m = e.what();
    CHECK(m.find("m.ckpt: made for a different model") == 0);
    CHECK(m.find("conv/kernel") != std::string::npos);
  }
}
