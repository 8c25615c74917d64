#include "cluster/membership.h"

#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <thread>

#include "kafka/embedded_broker.h"

namespace tally::cluster {
namespace {

using namespace std::chrono_literals;

// Waits up to 20 s for `done`.
template <typename F>
bool Eventually(F done) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return done();
}

class MembershipTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto broker = kafka::EmbeddedBroker::Start({.topics = {{"events", 4}, {"events.cluster", 1}}});
    ASSERT_TRUE(broker) << broker.error().message;
    broker_ = std::move(*broker);
  }
  std::unique_ptr<Membership> Join(const std::string& id, int standby_replicas = 0) {
    auto m = Membership::Start({.brokers = broker_->bootstrap(),
                                .topic = "events.cluster",
                                .instance_id = id,
                                .url = "http://" + id + ":80",
                                .standby_replicas = standby_replicas},
                               &metrics_);
    EXPECT_TRUE(m) << m.error().message;
    return m ? std::move(*m) : nullptr;
  }

  MetricsRegistry metrics_;
  std::unique_ptr<kafka::EmbeddedBroker> broker_;
};

TEST_F(MembershipTest, RefusesMissingOptions) {
  auto m =
      Membership::Start({.brokers = broker_->bootstrap(), .topic = "events.cluster"}, &metrics_);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, ErrorCode::kInvalidArgument);
}

TEST_F(MembershipTest, InstancesLearnEachOthersPartitionsAndWorkspaces) {
  auto a = Join("a");
  auto b = Join("b");
  ASSERT_TRUE(a && b);
  a->SetAssignment({1, 0}, {0, 1});
  b->SetAssignment({2, 3}, {2});
  a->NoteScope(0, "ws-a", "org");
  a->NoteScope(0, "ws-a", "org");  // published once
  b->NoteScope(2, "ws-b", "org");
  b->NoteScope(3, "ws-late", "");

  ASSERT_TRUE(Eventually([&] { return a->RouteWorkspace("ws-b").kind == Route::kForward; }));
  Route to_b = a->RouteWorkspace("ws-b");
  EXPECT_EQ(to_b.url, "http://b:80");
  EXPECT_EQ(a->RouteWorkspace("ws-a").kind, Route::kLocal);
  ASSERT_TRUE(Eventually([&] { return b->RouteWorkspace("ws-a").kind == Route::kForward; }));
  EXPECT_EQ(b->RouteWorkspace("ws-a").url, "http://a:80");
  // b owns partition 3 but has not caught up with it.
  ASSERT_TRUE(Eventually([&] { return a->KnowsWorkspace("ws-late"); }));
  EXPECT_EQ(a->RouteWorkspace("ws-late").kind, Route::kUnavailable);
  // The organization spans two instances: not answered by either alone.
  EXPECT_EQ(a->RouteOrganizations({"org"}).kind, Route::kUnavailable);
  EXPECT_EQ(a->Organizations(), (std::vector<std::string>{"org"}));
  EXPECT_EQ(a->WorkspacesOfOrganization("org"), (std::vector<std::string>{"ws-a", "ws-b"}));

  // b leaves: its partitions have no owner until the group gives them to someone.
  b.reset();
  ASSERT_TRUE(Eventually([&] { return a->RouteWorkspace("ws-b").kind == Route::kUnavailable; }));
  a->SetAssignment({0, 1, 2, 3}, {0, 1, 2, 3});
  EXPECT_EQ(a->RouteWorkspace("ws-b").kind, Route::kLocal);
  EXPECT_EQ(a->RouteOrganizations({"org"}).kind, Route::kLocal);

  // A newcomer reads everything published before it started.
  auto c = Join("c");
  ASSERT_TRUE(c);
  ASSERT_TRUE(Eventually([&] { return c->synced(); }));
  ASSERT_TRUE(Eventually([&] { return c->RouteWorkspace("ws-b").kind == Route::kForward; }));
  EXPECT_EQ(c->RouteWorkspace("ws-b").url, "http://a:80");
  std::string json;
  JsonWriter w(&json);
  c->WriteJson(&w);
  EXPECT_NE(json.find(R"("instance_id":"c")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("partitions":{"0":"a","1":"a","2":"a","3":"a"})"), std::string::npos)
      << json;
}

// What a standby listener was last told, from the reader thread.
class StandbySink {
 public:
  std::function<void(const std::vector<int32_t>&)> Listener() {
    return [this](const std::vector<int32_t>& p) {
      std::lock_guard lock(mu_);
      last_ = p;
    };
  }
  std::vector<int32_t> last() {
    std::lock_guard lock(mu_);
    return last_;
  }

 private:
  std::mutex mu_;
  std::vector<int32_t> last_;
};

TEST_F(MembershipTest, StandbysFollowTheGroupsOwnership) {
  auto a = Join("a", 1);
  auto b = Join("b", 1);
  ASSERT_TRUE(a && b);
  StandbySink at_a, at_b;
  a->SetStandbyListener(at_a.Listener());
  b->SetStandbyListener(at_b.Listener());
  a->SetAssignment({0, 1}, {0, 1});
  b->SetAssignment({2, 3}, {2, 3});
  using V = std::vector<int32_t>;
  ASSERT_TRUE(Eventually([&] {
    return at_a.last() == V{2, 3} && at_b.last() == V{0, 1};
  })) << at_a.last().size()
      << " " << at_b.last().size();
  // A standby's views show a workspace as soon as it stores it: its routing knows the
  // workspace's partition (and forwards to the owner) at once, not when the record is back.
  b->NoteScope(0, "ws-kept", "");
  EXPECT_EQ(b->RouteWorkspace("ws-kept").kind, Route::kForward);
  EXPECT_EQ(b->RouteWorkspace("ws-kept").url, "http://a:80");
  // The standbys are published: a newcomer sees who keeps what.
  auto c = Join("c");
  ASSERT_TRUE(c);
  ASSERT_TRUE(Eventually([&] {
    std::string json;
    JsonWriter w(&json);
    c->WriteJson(&w);
    return json.find(R"("owned":[0,1],"serving":[0,1],"standby":[2,3])") != std::string::npos;
  }));
  // b leaves and a takes everything: a keeps no standbys any more.
  b.reset();
  a->SetAssignment({0, 1, 2, 3}, {0, 1, 2, 3});
  ASSERT_TRUE(Eventually([&] { return at_a.last().empty(); })) << at_a.last().size();
}

}  // namespace
}  // namespace tally::cluster
