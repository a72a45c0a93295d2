// A minimal test harness for the ctest binaries: CHECK records a failure with file and line and
// the binary's exit code reports whether any check failed.
#pragma once
#include <cmath>
#include <cstdio>
#include <exception>

namespace cgad_test {
inline int& failures() {
  static int n = 0;
  return n;
}
inline int finish(const char* name) {
  if (failures()) std::printf("%s: %d check(s) failed\n", name, failures());
  else std::printf("%s: all checks passed\n", name);
  return failures() ? 1 : 0;
}
}  // namespace cgad_test

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::printf("%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);       \
      ++cgad_test::failures();                                                   \
    }                                                                            \
  } while (0)

#define CHECK_NEAR(a, b, tol) CHECK(std::fabs(double(a) - double(b)) <= (tol))

#define CHECK_THROWS(ExcType, expr)                                              \
  do {                                                                           \
    bool thrown_ = false;                                                        \
    try { expr; } catch (const ExcType&) { thrown_ = true; }                     \
    if (!thrown_) {                                                              \
      std::printf("%s:%d: expected %s from %s\n", __FILE__, __LINE__, #ExcType, #expr); \
      ++cgad_test::failures();                                                   \
    }                                                                            \
  } while (0)
