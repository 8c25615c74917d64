#include "store/directory.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <algorithm>
#include <cfloat>
#include <chrono>
#include <filesystem>
#include <map>

#include "common/saturating.h"
#include "store/directory.h"
#include "store/internal/store_rep.h"
#include "store/store_test_fixture.h"
#include "store/testing/codec_testing.h"
#include "store/testing/store_testing.h"
#include "store/write_set.h"

namespace tally::store {
namespace {

TEST(DirectoryTest, RenamesMoveTheNameIndexAndLatestWins) {
  Directory d;
  using K = Directory::Update::Kind;
  d.Apply({{K::kNewAgent, 2, 0, "ws", "a2"},
           {K::kAgentName, 2, 100, "Old", ""},
           {K::kAgentName, 2, 300, "New", ""},
           {K::kAgentName, 2, 200, "Stale", ""},  // older than "New": ignored
           {K::kNewAgent, 5, 0, "ws", "a5"},
           {K::kAgentName, 5, 50, "New", ""}});
  Directory::Reader r(d);
  EXPECT_EQ(r.AgentName(2), "New");
  EXPECT_EQ(r.AgentsNamed("Old"), nullptr);
  EXPECT_EQ(r.AgentsNamed("Stale"), nullptr);
  ASSERT_NE(r.AgentsNamed("New"), nullptr);
  EXPECT_EQ(*r.AgentsNamed("New"), (std::vector<uint32_t>{2, 5}));
  EXPECT_EQ(r.AgentsNamed("a2"), nullptr);  // named agents are not found by id
  EXPECT_EQ(r.AgentRef(5).second, "a5");
  EXPECT_EQ(r.UserLabel({}, 99), "");
}

TEST(DirectoryTest, UserLabelsComeOnlyFromTheScopesOrganizations) {
  Directory d;
  using K = Directory::Update::Kind;
  d.Apply({{K::kNewUser, 0, 0, "u0", ""},
           {K::kUserEmail, 0, 100, "real@org2", "org_2"},
           {K::kUserEmail, 0, 200, "x@evil", "org_1"},       // later, but another organization
           {K::kUserEmail, 0, 50, "stale@org2", "org_2"}});  // older than real@org2: ignored
  Directory::Reader r(d);
  EXPECT_EQ(r.UserLabel(r.Organizations({"org_2"}), 0), "real@org2");
  EXPECT_EQ(r.UserLabel(r.Organizations({"org_1"}), 0), "x@evil");
  EXPECT_EQ(r.UserLabel(r.Organizations({"org_3"}), 0), "u0");  // no email there: the id
  EXPECT_EQ(r.UserLabel(r.Organizations({"org_1", "org_2"}), 0), "x@evil");
}

}  // namespace
}  // namespace tally::store
