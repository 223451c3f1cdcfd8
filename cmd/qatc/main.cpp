// qatc: quantization-aware training from YAML recipes. Maps errors to exit codes:
// 0 ok, 1 the job failed, 2 bad usage or bad input.
#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>
#include <new>

#include "command.h"
#include "core/blas_env.h"
#include "core/error.h"
#include "core/log.h"
#include "core/threads.h"
#include "core/version.h"
#include "runtime/executor.h"

int main(int argc, char** argv) {
  using namespace qatc;
  maybe_reexec_for_blas(argv);
  CLI::App app{"qatc: quantization-aware training, post-training quantization and int8 inference from YAML recipes",
               "qatc"};
  app.set_version_flag("--version", std::string("qatc ") + QATC_VERSION);
  app.require_subcommand(1);
  app.fallthrough();
  cli::Globals g;
  app.add_option("--threads", g.threads, "worker threads (default: all cores)")->check(CLI::Range(0, 1024));
  std::string kernels = "opt";
  app.add_option("--kernels", kernels,
                 "int8 kernels: opt (default: the fastest instruction set of this CPU), portable, avx2, avx_vnni, "
                 "avx512_vnni, amx, or ref (the reference kernels)");
  app.add_flag("--json", g.json, "print the machine-readable result as JSON on stdout");
  app.add_flag("-v,--verbose", g.verbose, "more log output");
  app.add_flag("-q,--quiet", g.quiet, "only warnings and errors on stderr");

  std::vector<std::unique_ptr<cli::Command>> commands;
  commands.push_back(cli::make_run(app));
  commands.push_back(cli::make_train(app));
  commands.push_back(cli::make_ptq(app));
  commands.push_back(cli::make_qat(app));
  commands.push_back(cli::make_convert(app));
  commands.push_back(cli::make_eval(app));
  commands.push_back(cli::make_report(app));
  commands.push_back(cli::make_inspect(app));
  commands.push_back(cli::make_bench(app));

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "qatc: %s (see qatc --help)\n", e.what());
    return 2;
  }

  setup_logging(g.quiet ? Verbosity::quiet : g.verbose ? Verbosity::verbose : Verbosity::normal);
  try {
    set_num_threads(g.threads);
    runtime::set_kernels(kernels);
    spdlog::debug("OpenBLAS kernels: {}", blas_corename());
    for (auto& c : commands)
      if (c->app->parsed()) return c->execute(g);
    return 2;
  } catch (const Error& e) {
    std::fprintf(stderr, "qatc: error: %s\n", e.what());
    return 2;
  } catch (const JobFailed& e) {
    std::fprintf(stderr, "qatc: failed: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "qatc: failed: out of memory; use a smaller batch size\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qatc: internal error: %s\n", e.what());
    return 1;
  }
}
