#include "common/parse.h"

#include <gtest/gtest.h>

#include <limits>

namespace tally {
namespace {

TEST(ParseInt64Test, AcceptsPlainDecimalInRange) {
  EXPECT_EQ(ParseInt64("0", 0, 10, "--n").value(), 0);
  EXPECT_EQ(ParseInt64("10", 0, 10, "--n").value(), 10);
  EXPECT_EQ(ParseInt64("-5", -10, 10, "--n").value(), -5);
  EXPECT_EQ(
      ParseInt64("9223372036854775807", 0, std::numeric_limits<int64_t>::max(), "--n").value(),
      std::numeric_limits<int64_t>::max());
}

TEST(ParseInt64Test, RefusesGarbageAndOutOfRangeNamingTheFlag) {
  for (const char* bad : {"", "abc", "1x", "x1", " 1", "1 ", "+1", "0x10", "1e3", "1.5", "-", "11",
                          "-11", "99999999999999999999"}) {
    auto r = ParseInt64(bad, -10, 10, "--partitions");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(r.error().field, "--partitions");
    EXPECT_EQ(r.error().message.rfind("--partitions: ", 0), 0u) << r.error().message;
    EXPECT_NE(r.error().message.find("from -10 to 10"), std::string::npos) << r.error().message;
  }
}

TEST(ParseUint64Test, RefusesNegativeInsteadOfWrapping) {
  EXPECT_EQ(ParseUint64("18446744073709551615", 0, UINT64_MAX, "--seed").value(), UINT64_MAX);
  EXPECT_FALSE(ParseUint64("-1", 0, UINT64_MAX, "--seed"));
  EXPECT_FALSE(ParseUint64("18446744073709551616", 0, UINT64_MAX, "--seed"));
  EXPECT_FALSE(ParseUint64("5", 6, 10, "--seed"));
}

TEST(ParseDoubleTest, FiniteDecimalsInRangeOnly) {
  EXPECT_DOUBLE_EQ(ParseDouble("0.25", 0, 1, "--f").value(), 0.25);
  EXPECT_DOUBLE_EQ(ParseDouble("7", 0, 10, "--f").value(), 7);
  EXPECT_DOUBLE_EQ(ParseDouble("1e3", 0, 1e4, "--f").value(), 1000);
  EXPECT_DOUBLE_EQ(ParseDouble(".5", 0, 1, "--f").value(), 0.5);
  for (const char* bad :
       {"", "nan", "inf", "-inf", "NaN", "0x1p3", "1.5x", "+1", " 1", "2", "-0.5", "1e400"}) {
    auto r = ParseDouble(bad, 0, 1, "--f");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().message.rfind("--f: the value must be a number from 0 to 1", 0), 0u)
        << r.error().message;
  }
}

TEST(ParsePortTest, RangeAndZero) {
  EXPECT_EQ(ParsePort("1", false, "--p").value(), 1);
  EXPECT_EQ(ParsePort("65535", false, "--p").value(), 65535);
  EXPECT_EQ(ParsePort("0", true, "--p").value(), 0);
  EXPECT_FALSE(ParsePort("0", false, "--p"));
  EXPECT_FALSE(ParsePort("65536", true, "--p"));
  EXPECT_FALSE(ParsePort("99999", true, "--p"));  // must not wrap to 34463
  EXPECT_FALSE(ParsePort("-1", true, "--p"));
  EXPECT_FALSE(ParsePort("abc", true, "--p"));
  EXPECT_FALSE(ParsePort("", true, "--p"));
}

TEST(ParseHostPortTest, HostAndPort) {
  auto a = ParseHostPort("127.0.0.1:8080", false, "--listen");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8080);
  auto b = ParseHostPort("[::1]:0", true, "--listen");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->port, 0);
  auto c = ParseHostPort("localhost:65535", false, "--listen");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->host, "localhost");
}

TEST(ParseHostPortTest, RefusesBadAddressesNamingTheFlag) {
  for (const char* bad :
       {"", "127.0.0.1", "127.0.0.1:", ":8080", "127.0.0.1:abc", "127.0.0.1:99999", "127.0.0.1:0",
        "127.0.0.1:-1", "::1:80", "[::1]", "[::1]8080", "[]:80", "127.0.0.1:80 "}) {
    auto r = ParseHostPort(bad, false, "--listen");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().field, "--listen");
    EXPECT_EQ(r.error().message.rfind("--listen: ", 0), 0u) << r.error().message;
  }
  auto r = ParseHostPort("127.0.0.1:abc", true, "--listen");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message,
            "--listen: the port must be an integer from 0 to 65535, got '127.0.0.1:abc'");
}

TEST(ParseInt64Test, EmptyNameGivesAMessageWithoutPrefix) {
  auto r = ParseInt64("x", 1, 2, "");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "the value must be an integer from 1 to 2, got 'x'");
}

TEST(Utf8LengthTest, CountsCodePoints) {
  EXPECT_EQ(Utf8Length(""), 0u);
  EXPECT_EQ(Utf8Length("abc"), 3u);
  EXPECT_EQ(Utf8Length("\xC3\xA9t\xC3\xA9"), 3u);  // "été"
  EXPECT_EQ(Utf8Length("\xE2\x82\xAC"), 1u);       // U+20AC
  EXPECT_EQ(Utf8Length("\xF0\x9F\x98\x80"), 1u);   // U+1F600
  EXPECT_EQ(Utf8Length("\xF4\x8F\xBF\xBF"), 1u);   // U+10FFFF
  EXPECT_EQ(Utf8Length(std::string("a\0b", 3)), 3u);
}

TEST(Utf8LengthTest, RefusesMalformed) {
  for (const char* bad :
       {"\xC3", "\xC3(", "\x80", "\xBF", "\xC0\xAF", "\xC1\xBF", "\xE0\x80\xAF", "\xED\xA0\x80",
        "\xF0\x80\x80\xAF", "\xF4\x90\x80\x80", "\xF5\x80\x80\x80", "\xFF", "a\xE2\x82"}) {
    EXPECT_FALSE(Utf8Length(bad)) << testing::PrintToString(std::string(bad));
  }
}

}  // namespace
}  // namespace tally
