#include "common/strings.h"

#include <gtest/gtest.h>

namespace tally {
namespace {

TEST(StringsTest, AsciiLowerFoldsOnlyAsciiLetters) {
  EXPECT_EQ(AsciiLower("Application/JSON; Charset=UTF-8"), "application/json; charset=utf-8");
  EXPECT_EQ(AsciiLower("ÀBC-09_z"), "Àbc-09_z");
  EXPECT_EQ(AsciiLower(""), "");
}

TEST(StringsTest, TrimBlanksStopsAtLineBreaks) {
  EXPECT_EQ(TrimBlanks(" \t a b \t "), "a b");
  EXPECT_EQ(TrimBlanks("\na\r"), "\na\r");
  EXPECT_EQ(TrimBlanks(" \t "), "");
}

TEST(StringsTest, TrimWhitespaceRemovesLineBreaksToo) {
  EXPECT_EQ(TrimWhitespace("\r\n 127.0.0.1:9092 \r\n"), "127.0.0.1:9092");
  EXPECT_EQ(TrimWhitespace("\n\t\r "), "");
  EXPECT_EQ(TrimWhitespace("x"), "x");
}

}  // namespace
}  // namespace tally
