// qatc convert CKPT -o MODEL: a quantized checkpoint into the integer-only model file.
#include <iostream>

#include <fmt/format.h>

#include "command.h"
#include "convert/convert.h"

namespace qatc::cli {
namespace {

class Convert : public Command {
 public:
  explicit Convert(CLI::App& parent) {
    app = parent.add_subcommand("convert", "convert a ptq.ckpt or qat.ckpt into an integer-only int8 model");
    app->add_option("checkpoint", ckpt, "quantized checkpoint (ptq.ckpt or qat.ckpt)")->required();
    app->add_option("-o,--output", output, "int8 model file to write")->required();
  }
  int execute(const Globals& g) override {
    runtime::IntModel m = convert::convert_checkpoint(ckpt);
    runtime::save_int_model(output, m);
    const auto bytes = std::filesystem::file_size(output);
    if (g.json) print_json({{"model", output}, {"size_bytes", bytes}, {"layers", m.layers.size()}});
    else std::cout << fmt::format("{}: {} layers, {} bytes\n", output, m.layers.size(), bytes);
    return 0;
  }
  std::string ckpt, output;
};

}  // namespace

std::unique_ptr<Command> make_convert(CLI::App& parent) { return std::make_unique<Convert>(parent); }

}  // namespace qatc::cli
