// Error types of the engine. The bindings translate each to the Python exception DESIGN.md
// assigns (ValueError, TypeError, IndexError, RuntimeError, MemoryError); messages name the op.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>
#include <cstdint>

namespace cgad {

struct ValueError : std::runtime_error { using std::runtime_error::runtime_error; };
struct TypeError : std::runtime_error { using std::runtime_error::runtime_error; };
struct IndexError : std::runtime_error { using std::runtime_error::runtime_error; };
struct RuntimeError : std::runtime_error { using std::runtime_error::runtime_error; };
struct MemoryError : std::runtime_error { using std::runtime_error::runtime_error; };

namespace detail {
inline void cat_to(std::ostringstream&) {}
template <typename T, typename... Rest>
void cat_to(std::ostringstream& os, const T& v, const Rest&... rest) {
  os << v;
  cat_to(os, rest...);
}
}  // namespace detail

// Concatenates anything streamable into a message.
template <typename... Args>
std::string str(const Args&... args) {
  std::ostringstream os;
  detail::cat_to(os, args...);
  return os.str();
}

// "(2, 3, 4)", as Python prints a shape.
inline std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  if (s.size() == 1) os << ",";
  os << ")";
  return os.str();
}

}  // namespace cgad

#define CGAD_CHECK(cond, ExcType, ...) \
  do { if (!(cond)) throw ::cgad::ExcType(::cgad::str(__VA_ARGS__)); } while (0)
