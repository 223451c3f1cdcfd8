// qatc bench FILE: latency, throughput and peak memory of a model's float, fake-quant and int8
// forms. Each form is timed in a fresh process (this binary, re-run with --in-process), so its
// peak memory is its own and no form warms or fragments memory for the next.
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <iostream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "command.h"
#include "core/error.h"
#include "core/threads.h"
#include "pipeline/bench.h"
#include "runtime/executor.h"
#include "runtime/int_model.h"

namespace qatc::cli {
namespace {

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string self_exe() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) fail("bench: cannot find the qatc binary (/proc/self/exe); run the forms with --in-process");
  return std::string(buf, static_cast<size_t>(n));
}

// ", 3.1 MiB above start <= bound 4.0 MiB" for an int8 model file's result (docs/performance.md).
std::string memory_bound_note(const nlohmann::json& r) {
  if (!r.contains("memory_bound_bytes")) return "";
  const double above = r["peak_rss_above_start_bytes"].get<double>(), bound = r["memory_bound_bytes"].get<double>();
  return fmt::format(", {:.1f} MiB above start {} bound {:.1f} MiB", above / (1 << 20), above <= bound ? "<=" : ">",
                     bound / (1 << 20));
}

// The per-layer table of an int8 result timed with --profile.
std::string profile_text(const nlohmann::json& r) {
  std::string o = fmt::format("  {:<24} {:<18} {:<16} {:>12} {:>9} {:>6} {:>7}\n", "layer", "op", "output", "MACs", "ms",
                              "share", "GMAC/s");
  for (const auto& l : r["layers"]) {
    if (l["fused"].get<bool>()) {
      o += fmt::format("  {:<24} {:<18} {:<16} (fused into the conv next to it)\n", l["name"].get<std::string>(),
                       l["op"].get<std::string>(), l["output"].dump());
      continue;
    }
    o += fmt::format("  {:<24} {:<18} {:<16} {:>12} {:>9.4f} {:>5.1f}% {:>7.1f}\n", l["name"].get<std::string>(),
                     l["op"].get<std::string>(), l["output"].dump(), l["macs"].get<int64_t>(),
                     l["ms_median"].get<double>(), 100.0 * l["share"].get<double>(), l["gmacs_per_s"].get<double>());
  }
  return o;
}

class Bench : public Command {
 public:
  explicit Bench(CLI::App& parent) {
    app = parent.add_subcommand("bench", "time a model's inference (float, fake-quant, int8): latency median and p90, "
                                         "images/s, peak memory; a recipe needs no training (random weights, quick "
                                         "calibration)");
    app->add_option("file", file, "recipe (.yaml), checkpoint (.ckpt) or int8 model")->required();
    app->add_option("--batch", o.batch, "images per run (default 1)")->check(CLI::Range(1, 65536));
    app->add_option("--runs", o.max_runs, "at most this many timed runs per form (default 100)")
        ->check(CLI::Range(5, 1000000));
    app->add_option("--seconds", o.max_seconds, "stop a form's timing after this many seconds (default 10; at least 5 runs)")
        ->check(CLI::Range(0.0, 86400.0));
    app->add_option("--form", forms, "float, fakequant or int8 (repeat for several; default: every form the file has)");
    app->add_option("--set", o.sets, "override a recipe key, e.g. --set model.alpha=0.25");
    app->add_flag("--profile", o.profile,
                  "int8: also time every layer and print a table (median ms per layer, share, GMAC/s); the clock "
                  "reads slow a run slightly");
    app->add_flag("--in-process", in_process, "time every form in this process (peak memory is then cumulative)");
    app->add_option("--save-int8", save_int8,
                    "write the int8 model it would time (a recipe's: random weights, quick calibration) to this file "
                    "and time nothing; `qatc bench` of that file then times it as a file");
  }

  int execute(const Globals& g) override {
    if (!save_int8.empty()) {
      runtime::save_int_model(save_int8, pipeline::bench_int_model(file, o));
      const auto bytes = std::filesystem::file_size(save_int8);
      if (g.json) print_json({{"model", save_int8}, {"size_bytes", bytes}});
      else std::cout << fmt::format("{}: {} bytes\n", save_int8, bytes);
      return 0;
    }
    const std::vector<std::string> available = pipeline::bench_forms(file);
    if (forms.empty()) forms = available;
    for (const auto& f : forms)
      if (std::find(available.begin(), available.end(), f) == available.end())
        fail("{}: cannot time it as '{}'; it times as: {}", file, f, fmt::format("{}", fmt::join(available, ", ")));
    nlohmann::json results = nlohmann::json::array();
    for (const auto& form : forms) {
      nlohmann::json r = in_process ? pipeline::bench_form(file, form, o) : run_child(form);
      if (!g.json)
        std::cerr << fmt::format("{:<10} batch {:>4}  threads {:>2}  median {:>9.3f} ms  p90 {:>9.3f} ms  {:>10.1f} img/s  "
                                 "peak RSS {:>7.1f} MiB{}\n",
                                 form, r["batch"].get<int64_t>(), r["threads"].get<int64_t>(),
                                 r["latency_ms_median"].get<double>(), r["latency_ms_p90"].get<double>(),
                                 r["images_per_s"].get<double>(), r["peak_rss_bytes"].get<double>() / (1 << 20),
                                 memory_bound_note(r));
      if (!g.json && r.contains("layers")) std::cerr << profile_text(r);
      results.push_back(r);
    }
    nlohmann::json out = {{"file", file}, {"results", results}};
    if (g.json) print_json(out);
    return 0;
  }

 private:
  nlohmann::json run_child(const std::string& form) {
    std::string cmd = quote(self_exe()) + " --threads " + std::to_string(num_threads()) + " --kernels " +
                      runtime::kernels_in_use() + " --json -q bench " +
                      quote(file) + " --in-process --form " + quote(form) + " --batch " + std::to_string(o.batch) +
                      " --runs " + std::to_string(o.max_runs) + " --seconds " + fmt::format("{}", o.max_seconds);
    for (const auto& s : o.sets) cmd += " --set " + quote(s);
    if (o.profile) cmd += " --profile";
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) fail("bench: cannot start {}", cmd);
    std::string text;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
    const int rc = pclose(p);
    if (rc != 0) fail("bench: timing form {} failed (its error is above)", form);
    try {
      return nlohmann::json::parse(text).at("results").at(0);
    } catch (const nlohmann::json::exception& e) {
      throw InternalError(fmt::format("bench: unreadable result of form {}: {}", form, e.what()));
    }
  }

  std::string file, save_int8;
  std::vector<std::string> forms;
  pipeline::BenchOptions o;
  bool in_process = false;
};

}  // namespace

std::unique_ptr<Command> make_bench(CLI::App& parent) { return std::make_unique<Bench>(parent); }

}  // namespace qatc::cli
