#include "common/strings.h"

namespace tally {
namespace {

bool IsBlank(char c) { return c == ' ' || c == '\t'; }
bool IsWhitespace(char c) { return IsBlank(c) || c == '\r' || c == '\n'; }

template <typename Pred>
std::string_view TrimIf(std::string_view s, Pred pred) {
  while (!s.empty() && pred(s.front())) s.remove_prefix(1);
  while (!s.empty() && pred(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string_view TrimBlanks(std::string_view s) { return TrimIf(s, IsBlank); }

std::string_view TrimWhitespace(std::string_view s) { return TrimIf(s, IsWhitespace); }

}  // namespace tally
