#include "query/internal/substring.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>

namespace tally::query::internal {
namespace {

// The reference: std::string_view::find.
const char* Reference(std::string_view hay, std::string_view needle) {
  const size_t at = hay.find(needle);
  return at == std::string_view::npos ? nullptr : hay.data() + at;
}

TEST(FindSubstringTest, Examples) {
  const std::string hay = std::string("sales bot 194\0agent 12\0copilot 777\0", 35);
  auto find = [&](std::string_view needle) {
    const char* hit = FindSubstring(hay.data(), hay.data() + hay.size(), needle);
    return hit ? static_cast<long>(hit - hay.data()) : -1L;
  };
  EXPECT_EQ(find(""), 0);
  EXPECT_EQ(find("s"), 0);
  EXPECT_EQ(find("agent"), 14);
  EXPECT_EQ(find("copilot 777"), 23);
  EXPECT_EQ(find("777"), 31);
  EXPECT_EQ(find(std::string_view("12\0c", 4)), 20);  // across a separator, like memmem
  EXPECT_EQ(find("copilot 778"), -1);
  EXPECT_EQ(find(std::string(hay.size() + 1, 'a')), -1);
  EXPECT_EQ(FindSubstring(hay.data(), hay.data(), "a"), nullptr);
}

// Random haystacks over a small alphabet (so that first and last bytes match often) and needles
// cut from them or made up, at every alignment and length around the 16-byte blocks.
TEST(FindSubstringTest, MatchesTheReferenceOnRandomInput) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> letter(0, 3);
  for (int round = 0; round < 20000; ++round) {
    const size_t n = rng() % 80;
    std::string hay(n, 'a');
    for (char& c : hay) c = static_cast<char>('a' + letter(rng));
    std::string needle;
    if (n > 0 && rng() % 2 == 0) {
      const size_t from = rng() % n;
      needle = hay.substr(from, 1 + rng() % (n - from));
    } else {
      needle.resize(rng() % 20);
      for (char& c : needle) c = static_cast<char>('a' + letter(rng));
    }
    const size_t skip = n > 0 ? rng() % (n + 1) : 0;  // also unaligned starts
    const std::string_view h = std::string_view(hay).substr(skip);
    ASSERT_EQ(FindSubstring(h.data(), h.data() + h.size(), needle), Reference(h, needle))
        << "haystack '" << h << "' needle '" << needle << "'";
  }
}

}  // namespace
}  // namespace tally::query::internal
