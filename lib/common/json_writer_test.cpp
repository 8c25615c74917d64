#include "common/json_writer.h"

#include <gtest/gtest.h>

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

TEST(Sha256Test, KnownVector) {
  EXPECT_EQ(Sha256Hex("test"), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "ab"));
  EXPECT_EQ(RandomHex(16).size(), 32u);
}

}  // namespace
}  // namespace tally
