#include "cluster/routing_table.h"

#include <gtest/gtest.h>

#include <map>

namespace tally::cluster {
namespace {

class RoutingTableTest : public ::testing::Test {
 protected:
  void Member(std::string id, std::vector<int32_t> owned, std::vector<int32_t> serving) {
    MemberInfo m{.instance_id = id,
                 .url = "http://" + id + ":80",
                 .owned = std::move(owned),
                 .serving = std::move(serving),
                 .time_ms = 1};
    ASSERT_TRUE(table_.Apply(MemberKey(id), EncodeMember(m), next_offset_++));
  }
  void Scope(int32_t p, std::string ws, std::string org = "") {
    ASSERT_TRUE(table_.Apply(ScopeKey(p, ws, org), EncodeScope(p, ws, org), next_offset_++));
  }

  RoutingTable table_;
  int64_t next_offset_ = 0;
};

TEST_F(RoutingTableTest, RecordsRoundTrip) {
  Member("a", {3, 1, 2, 1}, {1});
  const auto& a = table_.members().at("a");
  EXPECT_EQ(a.owned, (std::vector<int32_t>{1, 2, 3}));  // sorted, unique
  EXPECT_EQ(a.serving, (std::vector<int32_t>{1}));
  EXPECT_EQ(a.url, "http://a:80");
  EXPECT_EQ(a.offset, 0);
  Scope(4, "ws-1", "org-1");
  Scope(5, "ws-2", "org-1");
  Scope(5, "ws-3");
  EXPECT_EQ(table_.PartitionsOfWorkspace("ws-1"), (std::set<int32_t>{4}));
  EXPECT_EQ(table_.PartitionsOfOrganization("org-1"), (std::set<int32_t>{4, 5}));
  EXPECT_EQ(table_.WorkspacesOfOrganization("org-1"), (std::vector<std::string>{"ws-1", "ws-2"}));
  EXPECT_EQ(table_.Organizations(), (std::vector<std::string>{"org-1"}));
  EXPECT_EQ(table_.OrganizationsOfWorkspace("ws-2"), (std::vector<std::string>{"org-1"}));
  EXPECT_TRUE(table_.OrganizationsOfWorkspace("ws-3").empty());
  EXPECT_TRUE(table_.KnowsWorkspace("ws-3"));
  EXPECT_FALSE(table_.KnowsWorkspace("ws-4"));
  EXPECT_TRUE(table_.PartitionsOfWorkspace("ws-4").empty());
}

TEST_F(RoutingTableTest, MalformedRecordsAreRefusedAndChangeNothing) {
  EXPECT_FALSE(table_.Apply("other/x", "{}", 0));
  EXPECT_FALSE(table_.Apply("member/a", "not json", 1));
  EXPECT_FALSE(table_.Apply(
      "member/a", R"({"instance_id":"b","url":"","owned":[],"serving":[],"time_ms":0})", 2));
  EXPECT_FALSE(table_.Apply(
      "member/a", R"({"instance_id":"a","url":"","owned":[-1],"serving":[],"time_ms":0})", 3));
  EXPECT_FALSE(
      table_.Apply("scope/1/w/", R"({"partition":1,"workspace":"","organization":""})", 4));
  EXPECT_FALSE(
      table_.Apply("scope/1/w/", R"({"partition":"1","workspace":"w","organization":""})", 5));
  EXPECT_EQ(table_.malformed(), 6);
  EXPECT_EQ(table_.applied(), 0);
  EXPECT_TRUE(table_.members().empty());
  EXPECT_FALSE(table_.KnowsWorkspace("w"));
}

TEST_F(RoutingTableTest, NewestClaimOwnsAPartition) {
  Member("a", {0, 1}, {0, 1});
  Member("b", {1, 2}, {1, 2});  // b took 1 after a's record: a died without saying so
  EXPECT_EQ(table_.OwnerOf(0)->instance_id, "a");
  EXPECT_EQ(table_.OwnerOf(1)->instance_id, "b");
  EXPECT_EQ(table_.OwnerOf(2)->instance_id, "b");
  EXPECT_EQ(table_.OwnerOf(3), nullptr);
  Member("a", {0, 1}, {0, 1});  // a claims 1 again, later: a rebalance gave it back
  EXPECT_EQ(table_.OwnerOf(1)->instance_id, "a");
  Member("a", {}, {});  // a left
  EXPECT_EQ(table_.OwnerOf(0), nullptr);
  EXPECT_EQ(table_.OwnerOf(1)->instance_id, "b");
}

TEST_F(RoutingTableTest, RoutesAWorkspace) {
  Member("a", {0}, {0});
  Member("b", {1}, {1});
  Member("c", {2}, {});
  Scope(0, "on-a");
  Scope(1, "on-b");
  Scope(2, "on-c");
  Scope(3, "orphan");
  Scope(0, "split");
  Scope(1, "split");
  const LocalState a{.instance_id = "a", .owned = {0}, .serving = {0}};

  EXPECT_EQ(table_.RouteWorkspace("never-seen", a).kind, Route::kLocal);
  EXPECT_EQ(table_.RouteWorkspace("on-a", a).kind, Route::kLocal);
  Route to_b = table_.RouteWorkspace("on-b", a);
  EXPECT_EQ(to_b.kind, Route::kForward);
  EXPECT_EQ(to_b.url, "http://b:80");
  EXPECT_EQ(to_b.instance_id, "b");
  Route restoring = table_.RouteWorkspace("on-c", a);
  EXPECT_EQ(restoring.kind, Route::kUnavailable);
  EXPECT_NE(restoring.reason.find("restored by c"), std::string::npos) << restoring.reason;
  Route orphan = table_.RouteWorkspace("orphan", a);
  EXPECT_EQ(orphan.kind, Route::kUnavailable);
  EXPECT_NE(orphan.reason.find("no owner"), std::string::npos) << orphan.reason;
  Route split = table_.RouteWorkspace("split", a);
  EXPECT_EQ(split.kind, Route::kUnavailable);
  EXPECT_NE(split.reason.find("keyed by its workspace_id"), std::string::npos) << split.reason;
}

TEST_F(RoutingTableTest, OwnStateBeatsOwnPublishedRecord) {
  Member("a", {0}, {0});  // what a published a moment ago
  Scope(0, "ws");
  // a's consumer has just lost partition 0, and nobody else claims it yet.
  const LocalState revoked{.instance_id = "a", .owned = {}, .serving = {}};
  EXPECT_EQ(table_.RouteWorkspace("ws", revoked).kind, Route::kUnavailable);
  // a owns it again but has not caught up.
  const LocalState restoring{.instance_id = "a", .owned = {0}, .serving = {}};
  EXPECT_EQ(table_.RouteWorkspace("ws", restoring).kind, Route::kUnavailable);
  const LocalState serving{.instance_id = "a", .owned = {0}, .serving = {0}};
  EXPECT_EQ(table_.RouteWorkspace("ws", serving).kind, Route::kLocal);
}

TEST_F(RoutingTableTest, RoutesPartitionSetsOfOneOwnerOnly) {
  Member("a", {0, 1}, {0, 1});
  Member("b", {2, 3}, {2, 3});
  const LocalState a{.instance_id = "a", .owned = {0, 1}, .serving = {0, 1}};
  EXPECT_EQ(table_.RoutePartitions({0, 1}, a).kind, Route::kLocal);
  EXPECT_EQ(table_.RoutePartitions({2, 3}, a).kind, Route::kForward);
  EXPECT_EQ(table_.RoutePartitions({1, 2}, a).kind, Route::kUnavailable);
  EXPECT_EQ(table_.RoutePartitions({2, 1}, a).kind, Route::kUnavailable);
}

TEST_F(RoutingTableTest, StandbysFollowTheOwnerAroundTheRing) {
  Member("a", {0, 1, 2}, {0, 1, 2});
  Member("b", {3, 4, 5}, {3, 4, 5});
  Member("c", {6, 7, 8}, {6, 7, 8});
  using V = std::vector<int32_t>;
  EXPECT_EQ(table_.StandbyPartitions("a", 0), V{});
  EXPECT_EQ(table_.StandbyPartitions("b", 1), (V{0, 1, 2}));
  EXPECT_EQ(table_.StandbyPartitions("c", 1), (V{3, 4, 5}));
  EXPECT_EQ(table_.StandbyPartitions("a", 1), (V{6, 7, 8}));
  // Two replicas in a group of three: everyone keeps every partition it does not own.
  EXPECT_EQ(table_.StandbyPartitions("a", 2), (V{3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(table_.StandbyPartitions("a", 5), (V{3, 4, 5, 6, 7, 8}));
  // Every partition has min(replicas, members - 1) standbys, none of them its owner.
  for (int replicas = 1; replicas <= 3; ++replicas) {
    std::map<int32_t, int> copies;
    for (const char* id : {"a", "b", "c"}) {
      for (int32_t p : table_.StandbyPartitions(id, replicas)) {
        EXPECT_NE(table_.OwnerOf(p)->instance_id, id);
        ++copies[p];
      }
    }
    for (int32_t p = 0; p < 9; ++p) EXPECT_EQ(copies[p], std::min(replicas, 2)) << p;
  }
  // A newcomer that owns nothing yet takes its place in the ring at once.
  EXPECT_EQ(table_.StandbyPartitions("bb", 1), (V{3, 4, 5}));
  // A member that lost its partitions leaves the ring: b's partitions moved to a and c.
  Member("a", {0, 1, 2, 3, 4}, {0, 1, 2, 3, 4});
  Member("c", {5, 6, 7, 8}, {5, 6, 7, 8});
  Member("b", {}, {});
  EXPECT_EQ(table_.StandbyPartitions("a", 1), (V{5, 6, 7, 8}));
  EXPECT_EQ(table_.StandbyPartitions("c", 1), (V{0, 1, 2, 3, 4}));
  // A lone member keeps no standbys.
  RoutingTable lone;
  MemberInfo only{.instance_id = "x", .owned = {0, 1}, .serving = {0, 1}};
  ASSERT_TRUE(lone.Apply(MemberKey("x"), EncodeMember(only), 0));
  EXPECT_EQ(lone.StandbyPartitions("x", 1), V{});
}

TEST_F(RoutingTableTest, StandbyListsRoundTripAndMayBeAbsent) {
  MemberInfo m{.instance_id = "a",
               .url = "http://a:80",
               .owned = {1},
               .serving = {1},
               .standby = {4, 2},
               .time_ms = 1};
  ASSERT_TRUE(table_.Apply(MemberKey("a"), EncodeMember(m), 0));
  EXPECT_EQ(table_.members().at("a").standby, (std::vector<int32_t>{2, 4}));
  ASSERT_TRUE(table_.Apply(
      MemberKey("b"),
      R"({"instance_id":"b","url":"http://b:80","owned":[2],"serving":[],"time_ms":1})", 1));
  EXPECT_TRUE(table_.members().at("b").standby.empty());
  EXPECT_FALSE(table_.Apply(
      MemberKey("c"),
      R"({"instance_id":"c","url":"u","owned":[],"serving":[],"standby":[-1],"time_ms":1})", 2));
}

TEST_F(RoutingTableTest, WritesJson) {
  Member("a", {0, 1}, {0});
  Scope(0, "ws", "org");
  std::string out;
  JsonWriter w(&out);
  table_.WriteJson(&w);
  EXPECT_EQ(
      out,
      R"({"members":[{"instance_id":"a","url":"http://a:80","owned":[0,1],"serving":[0],)"
      R"("standby":[],"time_ms":1}],"partitions":{"0":"a","1":"a"},"workspaces":1,"organizations":1})");
}

}  // namespace
}  // namespace tally::cluster
