// Shared pieces of the subcommands: global flags and the subcommand interface.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qatc::cli {

struct Globals {
  int threads = 0;  // 0 = all cores
  bool json = false;
  bool verbose = false;
  bool quiet = false;
};

// One subcommand: registers its flags on construction, runs after parsing.
class Command {
 public:
  virtual ~Command() = default;
  virtual int execute(const Globals& g) = 0;
  CLI::App* app = nullptr;
};

std::unique_ptr<Command> make_run(CLI::App& parent);
std::unique_ptr<Command> make_train(CLI::App& parent);
std::unique_ptr<Command> make_ptq(CLI::App& parent);
std::unique_ptr<Command> make_qat(CLI::App& parent);
std::unique_ptr<Command> make_convert(CLI::App& parent);
std::unique_ptr<Command> make_eval(CLI::App& parent);
std::unique_ptr<Command> make_report(CLI::App& parent);
std::unique_ptr<Command> make_inspect(CLI::App& parent);
std::unique_ptr<Command> make_bench(CLI::App& parent);

// Machine output: one JSON document on stdout.
void print_json(const nlohmann::json& j);

// Flags every recipe-driven command takes.
struct RecipeFlags {
  std::string recipe;
  std::string out;
  std::vector<std::string> sets;
  void add(CLI::App* app);
};

}  // namespace qatc::cli
