#include "common/json_writer.h"

#include <gtest/gtest.h>

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "common/sha256.h"

namespace tally {
namespace {

TEST(JsonWriterTest, WritesNestedValues) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("a");
  w.Int(1);
  w.Key("b");
  w.BeginArray();
  w.Double(1.5);
  w.Double(2);
  w.String("x\"y\n\x01");
  w.EndArray();
  w.Key("c");
  w.Null();
  w.Key("d");
  w.BeginObject();
  w.EndObject();
  w.EndObject();
  EXPECT_EQ(out, R"({"a":1,"b":[1.5,2,"x\"y\n\u0001"],"c":null,"d":{}})");
}

TEST(JsonWriterTest, KeyReturnsTheWriterForTheValue) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("n").Int(-3);
  w.Key("s").String("t");
  w.Key("o").StringOrNull(std::nullopt);
  w.Key("l").BeginArray();
  w.Bool(true);
  w.EndArray();
  w.Key("r").Raw("[1]");
  w.EndObject();
  EXPECT_EQ(out, R"({"n":-3,"s":"t","o":null,"l":[true],"r":[1]})");
}

// The escaping rules, one byte at a time (the simple form the fast path must match).
std::string ReferenceJsonString(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"') {
      out += "\\\"";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

TEST(JsonWriterTest, AppendJsonStringMatchesTheByteByByteRules) {
  EXPECT_EQ(ReferenceJsonString("a\"b\\c\x1f\x7f\xc3\xa9"), R"("a\"b\\c\u001f)"
                                                            "\x7f\xc3\xa9\"");
  std::mt19937 rng(7);
  // Every byte value alone, then random strings mixing plain runs and bytes to escape.
  for (int c = 0; c < 256; ++c) {
    const std::string s(1, static_cast<char>(c));
    std::string out = "x";
    AppendJsonString(&out, s);
    EXPECT_EQ(out, "x" + ReferenceJsonString(s)) << c;
  }
  for (int i = 0; i < 5000; ++i) {
    std::string s(rng() % 40, 'a');
    for (char& c : s) c = static_cast<char>(rng() % 4 == 0 ? rng() % 256 : 'a' + rng() % 26);
    std::string out;
    AppendJsonString(&out, s);
    ASSERT_EQ(out, ReferenceJsonString(s)) << i;
  }
}

// JsonWriter::Double's documented form, written out without the shared helper.
std::string ReferenceJsonDouble(double v) {
  if (std::isnan(v)) return "0";
  if (std::isinf(v)) return v > 0 ? "1.7976931348623157e+308" : "-1.7976931348623157e+308";
  char buf[32];
  if (v == std::trunc(v) && std::fabs(v) < 9e15) {
    return std::string(buf, std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(v)).ptr);
  }
  return std::string(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}

TEST(JsonWriterTest, AppendJsonNumbersMatchTheWriter) {
  std::vector<double> values = {0.0,
                                -0.0,
                                1.0,
                                0.125,
                                1e-9,
                                1e-6,
                                123456.000000001,
                                9e15,
                                -9e15 + 1,
                                1e300,
                                std::numeric_limits<double>::infinity(),
                                -std::numeric_limits<double>::infinity(),
                                std::numeric_limits<double>::quiet_NaN(),
                                std::numeric_limits<double>::max(),
                                std::numeric_limits<double>::denorm_min()};
  // Whole numbers of billionths (the request endpoints' costs) around the fast path's bounds and
  // its digit handling.
  for (int64_t n : {int64_t{999'999}, int64_t{1'000'000}, int64_t{1'000'001}, int64_t{1'234'500},
                    int64_t{100'000'000}, int64_t{200'000'000}, int64_t{300'000'000},
                    int64_t{999'999'999}, int64_t{1'000'000'001}, int64_t{123'000'000'001},
                    int64_t{999'999'999'999'999}, int64_t{1'000'000'000'000'000},
                    int64_t{1'000'000'000'000'001}, int64_t{3'710'882'500'000}}) {
    values.push_back(static_cast<double>(n) / 1e9);
    values.push_back(-static_cast<double>(n) / 1e9);
  }
  std::mt19937_64 rng(11);
  for (int i = 0; i < 200000; ++i) {
    // Nano-dollar sums as the request endpoints render them (every magnitude), arbitrary doubles,
    // and neighbours of billionths that are not themselves the quotient's double.
    values.push_back(static_cast<double>(rng() % 100'000'000'000'000ULL) / 1e9);
    values.push_back(static_cast<double>(rng() >> (rng() % 64)) / 1e9);
    values.push_back(std::nextafter(static_cast<double>(rng() % 1'000'000'000'000ULL) / 1e9, 1e9));
    uint64_t bits = rng();
    double d;
    std::memcpy(&d, &bits, sizeof d);
    values.push_back(d);
  }
  for (double v : values) {
    std::string out = "[", via_writer;
    AppendJsonDouble(&out, v);
    JsonWriter w(&via_writer);
    w.Double(v);
    ASSERT_EQ(out, "[" + ReferenceJsonDouble(v)) << v;
    ASSERT_EQ(via_writer, ReferenceJsonDouble(v)) << v;
  }
  for (int64_t v : {int64_t{0}, int64_t{-1}, int64_t{42}, std::numeric_limits<int64_t>::min(),
                    std::numeric_limits<int64_t>::max()}) {
    std::string out;
    AppendJsonInt(&out, v);
    EXPECT_EQ(out, std::to_string(v));
  }
}

TEST(JsonWriterTest, NonFiniteDoublesAreClampedNeverNull) {
  std::string out;
  JsonWriter w(&out);
  w.BeginArray();
  w.Double(std::numeric_limits<double>::infinity());
  w.Double(-std::numeric_limits<double>::infinity());
  w.Double(std::numeric_limits<double>::quiet_NaN());
  w.Double(1.7e308 + 1.7e308);
  w.EndArray();
  EXPECT_EQ(out, "[1.7976931348623157e+308,-1.7976931348623157e+308,0,1.7976931348623157e+308]");
}

TEST(Sha256Test, KnownVector) {
  EXPECT_EQ(Sha256Hex("test"), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "ab"));
  EXPECT_EQ(RandomHex(16).size(), 32u);
}

}  // namespace
}  // namespace tally
