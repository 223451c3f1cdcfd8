// The int8 model file: the loader that reads the file section by section gives the model that
// was saved, and accepts or rejects every damaged file exactly as the in-memory parser does.
#include <doctest/doctest.h>

#include <fstream>

#include "core/error.h"
#include "core/file.h"
#include "fixtures/temp_dir.h"
#include "runtime/int_model.h"
#include "runtime/small_model.h"

using namespace qatc;

namespace {

// The model's bytes, or the error it raised.
template <typename Load>
std::string outcome(Load&& load) {
  try {
    return "model: " + runtime::encode_int_model(load());
  } catch (const Error& e) {
    return std::string("error: ") + e.what();
  }
}

}  // namespace

TEST_CASE("int8 model file: loading what was saved gives every field back") {
  const runtime::IntModel m = testing::small_int_model();
  testing::TempDir dir("qatc_int_model_test");
  runtime::save_int_model(dir / "m.int8", m);
  const runtime::IntModel got = runtime::load_int_model(dir / "m.int8");
  // Every field is encoded, so equal encodings mean equal fields.
  CHECK(runtime::encode_int_model(got) == runtime::encode_int_model(m));
  CHECK(runtime::encode_int_model(got) == read_file(dir / "m.int8"));
  REQUIRE(got.layers.size() == m.layers.size());
  CHECK(got.recipe_yaml == m.recipe_yaml);
  CHECK(got.layers[0].name == m.layers[0].name);
  CHECK(std::get<runtime::ConvLayer>(got.layers[0].params).weights ==
        std::get<runtime::ConvLayer>(m.layers[0].params).weights);
}

TEST_CASE("int8 model file: the file loader rejects exactly what the in-memory parser rejects") {
  const std::string good = runtime::encode_int_model(testing::small_int_model());
  testing::TempDir dir("qatc_int_model_test");
  const auto path = dir / "x.int8";
  auto same_outcome = [&](const std::string& bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    const std::string from_file = outcome([&] { return runtime::load_int_model(path); });
    CHECK(from_file == outcome([&] { return runtime::parse_int_model(bytes, path.string()); }));
    return from_file;
  };
  CHECK(same_outcome(good) == "model: " + good);
  for (size_t len : {size_t{0}, size_t{5}, size_t{8}, size_t{12}, size_t{19}, size_t{20}, size_t{21}, good.size() / 2,
                     good.size() - 5, good.size() - 4, good.size() - 1}) {
    CAPTURE(len);
    const std::string out = same_outcome(good.substr(0, len));
    CHECK(out.rfind("error: " + path.string() + ": ", 0) == 0);
  }
  // A flipped bit: a checksum mismatch; with the checksum made right again, the parser's checks
  // (or a model that differs only in a weight or a scale).
  int accepted = 0, rejected = 0;
  for (size_t i = 0; i + 4 < good.size(); i += 3) {
    CAPTURE(i);
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ (1 << (i % 8)));
    const std::string flipped = same_outcome(bad);
    if (i >= 12) CHECK(flipped.find("checksum mismatch") != std::string::npos);  // past magic and version
    const uint32_t crc = crc32_of(std::string_view(bad).substr(0, bad.size() - 4));
    bad.replace(bad.size() - 4, 4, reinterpret_cast<const char*>(&crc), 4);
    (same_outcome(bad).rfind("model: ", 0) == 0 ? accepted : rejected)++;
  }
  CHECK(accepted > 0);
  CHECK(rejected > 0);
  CHECK(same_outcome(good + "x").find("checksum mismatch") != std::string::npos);
}

TEST_CASE("int8 model file: a missing file or a folder is named in one line") {
  testing::TempDir dir("qatc_int_model_test");
  CHECK_THROWS_WITH_AS(runtime::load_int_model(dir / "none.int8"), doctest::Contains("none.int8: file not found"),
                       Error);
  CHECK_THROWS_WITH_AS(runtime::load_int_model(dir.path()), doctest::Contains("is a folder"), Error);
}
