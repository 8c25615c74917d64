#include "http/internal/query_params.h"

#include <gtest/gtest.h>

#include <climits>

namespace tally::http::internal {
namespace {

TEST(QueryParamsTest, TheLastValueOfEachNameWinsAndAnEmptyOneIsNull) {
  const StringPairs query = {{"a", "1"}, {"b", "x"}, {"a", "2"},      {"c", "y"},
                             {"b", ""},  {"d", ""},  {"z", "ignored"}};
  const std::string *a = nullptr, *b = nullptr, *c = nullptr, *d = nullptr, *e = nullptr;
  ReadQueryParams(query, {{"a", &a}, {"b", &b}, {"c", &c}, {"d", &d}, {"e", &e}});
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(*a, "2");
  EXPECT_EQ(b, nullptr);  // a later empty value clears an earlier one
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(*c, "y");
  EXPECT_EQ(d, nullptr);
  EXPECT_EQ(e, nullptr);
}

TEST(QueryParamsTest, ParseIntegerRuleIsLaravelsIntegerRule) {
  EXPECT_EQ(ParseIntegerRule("42"), 42);
  EXPECT_EQ(ParseIntegerRule("+7"), 7);
  EXPECT_EQ(ParseIntegerRule("-7"), -7);
  EXPECT_EQ(ParseIntegerRule("99999999999999999999"), INT64_MAX);
  EXPECT_EQ(ParseIntegerRule("-99999999999999999999"), INT64_MIN);
  for (const char* bad : {"", "+", "-", "1.5", "1e3", " 1", "1 ", "0x10", "++1", "abc"}) {
    EXPECT_EQ(ParseIntegerRule(bad), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace tally::http::internal
