// Errors and checks: user mistakes raise qatc::Error (exit 2), failed jobs qatc::JobFailed
// (exit 1); internal invariants use QATC_CHECK*, which print both expressions and values.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace qatc {

// Bad usage or bad input (recipe, data, model file, CLI flag): exit code 2.
// The message names the file, key or layer and says what to do.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// The job ran but failed (divergence, accuracy gate, I/O error while writing): exit code 1.
class JobFailed : public std::runtime_error {
 public:
  explicit JobFailed(const std::string& what) : std::runtime_error(what) {}
};

// A broken internal invariant (a bug in qatc, never a user mistake).
class InternalError : public std::logic_error {
 public:
  explicit InternalError(const std::string& what) : std::logic_error(what) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

namespace detail {
template <typename A, typename B>
[[noreturn]] void check_op_failed(const char* file, int line, const char* expr_a, const char* op,
                                  const char* expr_b, const A& a, const B& b) {
  std::ostringstream os;
  os << file << ":" << line << ": check failed: " << expr_a << " " << op << " " << expr_b << " ("
     << a << " vs " << b << ")";
  throw InternalError(os.str());
}
[[noreturn]] inline void check_failed(const char* file, int line, const char* expr) {
  throw InternalError(std::string(file) + ":" + std::to_string(line) + ": check failed: " + expr);
}
}  // namespace detail

}  // namespace qatc

#define QATC_CHECK(cond) \
  do {                   \
    if (!(cond)) ::qatc::detail::check_failed(__FILE__, __LINE__, #cond); \
  } while (0)

#define QATC_CHECK_OP_(a, b, op)                                                        \
  do {                                                                                  \
    const auto& qatc_a_ = (a);                                                          \
    const auto& qatc_b_ = (b);                                                          \
    if (!(qatc_a_ op qatc_b_))                                                          \
      ::qatc::detail::check_op_failed(__FILE__, __LINE__, #a, #op, #b, qatc_a_, qatc_b_); \
  } while (0)

#define QATC_CHECK_EQ(a, b) QATC_CHECK_OP_(a, b, ==)
#define QATC_CHECK_NE(a, b) QATC_CHECK_OP_(a, b, !=)
#define QATC_CHECK_LT(a, b) QATC_CHECK_OP_(a, b, <)
#define QATC_CHECK_LE(a, b) QATC_CHECK_OP_(a, b, <=)
#define QATC_CHECK_GT(a, b) QATC_CHECK_OP_(a, b, >)
#define QATC_CHECK_GE(a, b) QATC_CHECK_OP_(a, b, >=)

// Checks in hot loops: compiled out of release builds.
#ifdef NDEBUG
#define QATC_DCHECK(cond) ((void)0)
#define QATC_DCHECK_LT(a, b) ((void)0)
#else
#define QATC_DCHECK(cond) QATC_CHECK(cond)
#define QATC_DCHECK_LT(a, b) QATC_CHECK_LT(a, b)
#endif
