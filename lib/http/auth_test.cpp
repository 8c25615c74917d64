#include "http/auth.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "common/sha256.h"
#include "http/router.h"

namespace tally::http {
namespace {

// SHA-256("test"), independently known (FIPS 180-2 examples / sha256sum).
constexpr const char* kTestSha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

std::string TwoKeys() {
  return std::string(R"(
[[keys]]
name = "acme-dashboard"
sha256 = ")") +
         kTestSha + R"("
user_id = "42"
workspaces = { "ws-owned" = "owner", "ws-member" = "member" }
organizations = ["org_7"]
admin = false

[[keys]]
name = "ops"
sha256 = ")" +
         Sha256Hex("ops-token") + R"("
user_id = 7
admin = true
)";
}

TEST(KeyStore, LoadsTheDesignExample) {
  auto store = KeyStore::LoadString(TwoKeys());
  ASSERT_TRUE(store.has_value()) << store.error().message;
  ASSERT_EQ(store->keys().size(), 2u);
  const ApiKey& k = store->keys()[0];
  EXPECT_EQ(k.name, "acme-dashboard");
  EXPECT_EQ(k.user_id, "42");
  EXPECT_TRUE(k.CanOwn("ws-owned"));
  EXPECT_TRUE(k.IsMember("ws-owned"));  // owner implies member
  EXPECT_FALSE(k.CanOwn("ws-member"));
  EXPECT_TRUE(k.IsMember("ws-member"));
  EXPECT_FALSE(k.IsMember("ws-other"));
  EXPECT_TRUE(k.HoldsOrganization("org_7"));
  EXPECT_FALSE(k.HoldsOrganization("org_8"));
  EXPECT_FALSE(k.admin);
  EXPECT_EQ(store->keys()[1].user_id, "7");
  EXPECT_TRUE(store->keys()[1].admin);
  EXPECT_TRUE(store->AnyKeyNamesWorkspace("ws-owned"));
  EXPECT_TRUE(store->AnyKeyNamesWorkspace("ws-member"));
  EXPECT_FALSE(store->AnyKeyNamesWorkspace("ws-other"));
}

TEST(KeyStore, AuthenticatesByHash) {
  auto store = KeyStore::LoadString(TwoKeys());
  ASSERT_TRUE(store.has_value());
  const ApiKey* k = store->Authenticate("test");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->name, "acme-dashboard");
  const ApiKey* ops = store->Authenticate("ops-token");
  ASSERT_NE(ops, nullptr);
  EXPECT_EQ(ops->name, "ops");
  EXPECT_EQ(store->Authenticate("Test"), nullptr);
  EXPECT_EQ(store->Authenticate("test "), nullptr);
  EXPECT_EQ(store->Authenticate(""), nullptr);
  // The stored hash itself is not a token.
  EXPECT_EQ(store->Authenticate(kTestSha), nullptr);
  EXPECT_EQ(KeyStore().Authenticate("test"), nullptr);
}

TEST(KeyStore, UppercaseHashIsNormalized) {
  std::string upper = kTestSha;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto store = KeyStore::LoadString("[[keys]]\nname = \"a\"\nsha256 = \"" + upper + "\"\n");
  ASSERT_TRUE(store.has_value()) << store.error().message;
  EXPECT_NE(store->Authenticate("test"), nullptr);
}

TEST(KeyStore, EmptyFileHasNoKeys) {
  auto store = KeyStore::LoadString("");
  ASSERT_TRUE(store.has_value());
  EXPECT_TRUE(store->keys().empty());
}

struct BadCase {
  std::string text;
  std::string field;         // expected Error::field
  std::string message_part;  // expected substring of the message
};

TEST(KeyStore, ReportsErrorsNamingEntryAndField) {
  const std::string sha = std::string("sha256 = \"") + kTestSha + "\"\n";
  const std::vector<BadCase> cases = {
      {"[[keys]]\nsha256 = \"" + std::string(kTestSha) + "\"\n", "keys[0].name",
       "name is required"},
      {"[[keys]]\nname = \"\"\n" + sha, "keys[0].name", "non-empty"},
      {"[[keys]]\nname = \"a\"\n", "keys[0].sha256", "keys[0] \"a\": sha256 is required"},
      {"[[keys]]\nname = \"a\"\nsha256 = \"abc\"\n", "keys[0].sha256", "64 hexadecimal"},
      {"[[keys]]\nname = \"a\"\nsha256 = \"" + std::string(63, 'a') + "g\"\n", "keys[0].sha256",
       "64 hexadecimal"},
      {"[[keys]]\nname = \"a\"\n" + sha + "admin = \"yes\"\n", "keys[0].admin", "true or false"},
      {"[[keys]]\nname = \"a\"\n" + sha + "admn = true\n", "keys[0].admn", "unknown field"},
      {"[[keys]]\nname = \"a\"\n" + sha + "workspaces = { w1 = \"admin\" }\n",
       "keys[0].workspaces.w1", "\"owner\" or \"member\""},
      {"[[keys]]\nname = \"a\"\n" + sha + "workspaces = [\"w1\"]\n", "keys[0].workspaces",
       "workspaces must be a table"},
      {"[[keys]]\nname = \"a\"\n" + sha + "organizations = \"org\"\n", "keys[0].organizations",
       "array of strings"},
      {"[[keys]]\nname = \"a\"\n" + sha + "organizations = [1]\n", "keys[0].organizations",
       "non-empty strings"},
      {"[[keys]]\nname = \"a\"\n" + sha + "user_id = 1.5\n", "keys[0].user_id",
       "string or an integer"},
      {"[[keys]]\nname = \"a\"\n" + sha + "[[keys]]\nname = \"a\"\nsha256 = \"" + Sha256Hex("x") +
           "\"\n",
       "keys[1].name", "keys[1] \"a\": duplicate key name"},
      {"[[keys]]\nname = \"a\"\n" + sha + "[[keys]]\nname = \"b\"\n" + sha, "keys[1].sha256",
       "same sha256 as key \"a\""},
      {"keys = 3\n", "keys", "array of tables"},
      {"[server]\nport = 1\n", "server", "unknown top-level entry"},
  };
  for (const BadCase& c : cases) {
    auto r = KeyStore::LoadString(c.text, "k.toml");
    ASSERT_FALSE(r.has_value()) << c.text;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << c.text;
    EXPECT_EQ(r.error().field, c.field) << c.text;
    EXPECT_NE(r.error().message.find(c.message_part), std::string::npos)
        << r.error().message << " should contain " << c.message_part;
    EXPECT_EQ(r.error().message.rfind("k.toml: ", 0), 0u) << r.error().message;
  }
}

TEST(KeyStore, SyntaxErrorsCarryLineAndColumn) {
  auto r = KeyStore::LoadString("[[keys]]\nname = \"a\nsha256 = 1\n", "k.toml");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(r.error().message.rfind("k.toml:2:", 0), 0u) << r.error().message;
}

TEST(KeyStore, LoadFile) {
  std::string path = ::testing::TempDir() + "/tally_keys_test.toml";
  {
    std::ofstream out(path);
    out << TwoKeys();
  }
  auto store = KeyStore::LoadFile(path);
  ASSERT_TRUE(store.has_value()) << store.error().message;
  EXPECT_EQ(store->keys().size(), 2u);
  std::remove(path.c_str());
  auto missing = KeyStore::LoadFile(path);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message.find(path), std::string::npos);
}

TEST(KeyStore, TheDevKeysFileLoads) {
  auto store = KeyStore::LoadFile(std::string(TALLY_SOURCE_DIR) + "/config/keys.dev.toml");
  ASSERT_TRUE(store.has_value()) << store.error().message;
  const ApiKey* admin = store->Authenticate("dev-token-change-me");
  ASSERT_NE(admin, nullptr);
  EXPECT_TRUE(admin->admin);
  EXPECT_TRUE(store->AnyKeyNamesWorkspace("8360bf61-4604-4f22-99dc-2afa910fd8c7"));
}

Request WithHeaders(StringPairs headers) {
  Request r;
  r.headers = std::move(headers);
  return r;
}

TEST(ExtractToken, BearerAndApiKeyHeaders) {
  EXPECT_EQ(ExtractToken(WithHeaders({{"Authorization", "Bearer abc"}})),
            std::optional<std::string_view>("abc"));
  EXPECT_EQ(ExtractToken(WithHeaders({{"authorization", "bearer  abc "}})),
            std::optional<std::string_view>("abc"));
  EXPECT_EQ(ExtractToken(WithHeaders({{"AUTHORIZATION", "BEARER abc"}})),
            std::optional<std::string_view>("abc"));
  EXPECT_EQ(ExtractToken(WithHeaders({{"api_key", "xyz"}})),
            std::optional<std::string_view>("xyz"));
  EXPECT_EQ(ExtractToken(WithHeaders({{"API_KEY", " xyz"}})),
            std::optional<std::string_view>("xyz"));
  // Bearer wins over api_key; a non-Bearer Authorization falls back to api_key.
  EXPECT_EQ(ExtractToken(WithHeaders({{"api_key", "k"}, {"Authorization", "Bearer b"}})),
            std::optional<std::string_view>("b"));
  EXPECT_EQ(ExtractToken(WithHeaders({{"Authorization", "Basic dXNlcjpwYXNz"}, {"api_key", "k"}})),
            std::optional<std::string_view>("k"));
  EXPECT_EQ(ExtractToken(WithHeaders({{"Authorization", "Basic dXNlcjpwYXNz"}})), std::nullopt);
  EXPECT_EQ(ExtractToken(WithHeaders({{"Authorization", "Bearer"}})), std::nullopt);
  EXPECT_EQ(ExtractToken(WithHeaders({{"Authorization", "Bearer   "}})), std::nullopt);
  EXPECT_EQ(ExtractToken(WithHeaders({{"Authorization", "Bearerabc"}})), std::nullopt);
  EXPECT_EQ(ExtractToken(WithHeaders({{"api_key", ""}})), std::nullopt);
  EXPECT_EQ(ExtractToken(WithHeaders({})), std::nullopt);
}

}  // namespace
}  // namespace tally::http

namespace tally::http {
namespace {

TEST(KeyStore, ReadsDeclaredWorkspaceOrganizations) {
  auto keys = KeyStore::LoadString(
      "[[workspaces]]\nid = \"ws-1\"\norganization = \"org_1\"\n"
      "[[workspaces]]\nid = \"ws-2\"\norganization = \"org_1\"\n"
      "[[workspaces]]\nid = \"ws-1\"\norganization = \"org_1\"\n");  // repeated alike: fine
  ASSERT_TRUE(keys.has_value()) << keys.error().message;
  EXPECT_EQ(keys->organizations(), (std::map<std::string, std::string, std::less<>>{
                                       {"ws-1", "org_1"}, {"ws-2", "org_1"}}));

  // One workspace, two organizations: refused, naming the entry.
  auto two = KeyStore::LoadString(
      "[[workspaces]]\nid = \"ws-1\"\norganization = \"org_1\"\n"
      "[[workspaces]]\nid = \"ws-1\"\norganization = \"org_2\"\n");
  ASSERT_FALSE(two.has_value());
  EXPECT_EQ(two.error().field, "workspaces[1].organization");
  auto missing = KeyStore::LoadString("[[workspaces]]\nid = \"ws-1\"\n");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().field, "workspaces[0].organization");
  auto typo = KeyStore::LoadString("[[workspaces]]\nid = \"w\"\norganisation = \"o\"\n");
  ASSERT_FALSE(typo.has_value());
  EXPECT_EQ(typo.error().field, "workspaces[0].organisation");
}

}  // namespace
}  // namespace tally::http
