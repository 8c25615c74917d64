#pragma once
// A group of tallyd instances on one consumer group, for end-to-end tests, and checks of every
// endpoint family through each instance against the independent references.
//
//   Stack stack;
//   stack.keys().push_back(KeySpec::Admin("it-admin", kGroupAdminToken));
//   ASSERT_TRUE(stack.StartBroker(kGroupPartitions));
//   ASSERT_TRUE(WriteKeysFile(stack.dir().File("keys.toml"), stack.keys()));
//   Group group(&stack);
//   for (const char* id : {"node-a", "node-b", "node-c"}) ASSERT_TRUE(group.Start(id));
//   ASSERT_TRUE(stack.Produce(lines, keys));
//   ASSERT_TRUE(group.WaitSettled(Millis(120000)));
//   CheckEveryInstance(group, References(lines), workspaces, "three instances");
//
// The checks authenticate with kGroupAdminToken: the keys file must hold it as an admin key.
// Not thread-safe.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "http/testing/free_port.h"
#include "kafka/admin.h"
#include "leaderboard_reference.h"
#include "reference.h"
#include "requests_reference.h"
#include "superagents_reference.h"

namespace tally::integration {

inline constexpr const char* kGroupAdminToken = "it-cluster-admin";
inline constexpr int kGroupPartitions = 12;

// Seconds since `since`.
inline double Elapsed(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

struct Instance {
  std::string id;
  std::string host_port;
  std::unique_ptr<Process> process;  // null for Group::AddExternal's
  std::unique_ptr<HttpClient> http;
};

class Group {
 public:
  using json = nlohmann::json;
  using Clock = std::chrono::steady_clock;

  // Instances join consumer group `group_name` on `stack`'s broker, whose events topic has
  // `partitions` partitions.
  explicit Group(Stack* stack, int partitions = kGroupPartitions,
                 std::string group_name = "tally-cluster-it")
      : stack_(stack), partitions_(partitions), group_name_(std::move(group_name)) {}

  // Starts instance `id` on its data directory (kept across restarts of the same id).
  // `extra_args` are added to tallyd's command line.
  ::testing::AssertionResult Start(const std::string& id, int standby_replicas = 2,
                                   double drop_idle_after_s = 2,
                                   const std::vector<std::string>& extra_args = {}) {
    const uint16_t port = http::testing::FreePort();
    if (port == 0) return ::testing::AssertionFailure() << "no free port";
    Instance in;
    in.id = id;
    in.host_port = "127.0.0.1:" + std::to_string(port);
    in.process = std::make_unique<Process>();
    const std::string port_file = stack_->dir().File(id + ".port");
    std::filesystem::remove(port_file);  // an earlier run's
    std::vector<std::string> argv = {
        TallydBinary(), "--brokers", stack_->bootstrap(), "--topic", Stack::kTopic, "--group",
        group_name_.c_str(), "--instance-id", id, "--data-dir", stack_->dir().File("data-" + id),
        "--listen", in.host_port, "--advertise-url", "http://" + in.host_port, "--port-file",
        port_file, "--keys", stack_->dir().File("keys.toml"), "--cache-ttl",
        std::to_string(cache_ttl_s_), "--now", Stack::kNow, "--max-future", "1d",
        // A killed member's partitions move within seconds.
        "--kafka-option", "session.timeout.ms=3000", "--kafka-option", "heartbeat.interval.ms=300",
        // By default every survivor of a failure keeps a warm copy of every partition it does
        // not own, and the views of partitions neither owned nor kept as a standby go soon.
        "--standby-replicas", std::to_string(standby_replicas), "--drop-idle-partitions-after",
        std::to_string(drop_idle_after_s)};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    if (Status s = in.process->Start(argv, stack_->dir().File(id)); !s) {
      return ::testing::AssertionFailure() << s.error().message;
    }
    auto addr = WaitForFile(port_file, Millis(60000), in.process.get());
    if (!addr) return ::testing::AssertionFailure() << addr.error().message;
    in.http = std::make_unique<HttpClient>(*addr);
    instances_.push_back(std::move(in));
    return ::testing::AssertionSuccess();
  }

  // --cache-ttl of the instances started from now on (default 0: every query reaches the views).
  void set_cache_ttl(int seconds) { cache_ttl_s_ = seconds; }

  // Adds a tallyd the test started itself (Stack::StartTallyd: a single instance, not a group
  // member) at `host_port`, so that the checks below go through it; Kill() only forgets it.
  void AddExternal(const std::string& id, const std::string& host_port) {
    Instance in;
    in.id = id;
    in.host_port = host_port;
    in.http = std::make_unique<HttpClient>(host_port);
    instances_.push_back(std::move(in));
  }

  // Stops instance `id` with `sig` (SIGKILL: a crash; SIGTERM: a graceful stop) and forgets it.
  void Kill(const std::string& id, int sig = SIGKILL) {
    for (auto it = instances_.begin(); it != instances_.end(); ++it) {
      if (it->id == id) {
        if (it->process) it->process->Stop(sig);
        instances_.erase(it);
        return;
      }
    }
  }

  std::vector<Instance>& instances() { return instances_; }
  Instance* Find(const std::string& id) {
    for (Instance& in : instances_) {
      if (in.id == id) return &in;
    }
    return nullptr;
  }

  // How many partitions each instance lists as idle (neither owned nor a standby), by id;
  // instances that do not answer are left out.
  std::map<std::string, int> IdlePartitions() {
    std::map<std::string, int> out;
    for (Instance& in : instances_) {
      auto r = in.http->Send("GET", "/readyz");
      if (!r) continue;
      json j = json::parse(r->body, nullptr, false);
      if (j.is_discarded()) continue;
      int idle = 0;
      for (const json& p : j["details"]["ingest"]["partitions"]) idle += p["role"] == "idle";
      out[in.id] = idle;
    }
    return out;
  }

  // Every live instance is ready, the group's routing (as each instance sees it) gives every
  // partition to a live instance that serves it, and every owner has applied its partitions up
  // to the log's end, and every live instance owns some partitions (a newcomer's rebalance is
  // done, not about to start). `why` says what is missing.
  bool Settled(std::string* why) {
    std::set<std::string> live;
    for (const Instance& in : instances_) live.insert(in.id);
    std::map<int, int64_t> high;
    for (int p = 0; p < partitions_; ++p) {
      auto wm = kafka::Watermarks(stack_->bootstrap(), Stack::kTopic, p, 5000);
      if (!wm) {
        *why = "watermarks: " + wm.error().message;
        return false;
      }
      high[p] = wm->second;
    }
    for (Instance& in : instances_) {
      auto r = in.http->Send("GET", "/readyz");
      if (!r) {
        *why = in.id + ": /readyz: " + r.error().message;
        return false;
      }
      json j = json::parse(r->body, nullptr, false);
      if (r->status != 200 || j.is_discarded()) {
        *why = in.id + ": not ready: " + r->body.substr(0, 400);
        return false;
      }
      // Not const: a key an instance does not list (a partition nobody owns right now) reads
      // as null instead of undefined behaviour (nlohmann's const operator[] on a missing key).
      json& routing = j["details"]["cluster"]["routing"];
      std::map<std::string, std::set<int>> serving_by;
      std::vector<int> owned_here;
      std::set<int> standby_here;
      for (const json& m : routing["members"]) {
        const std::string id = m["instance_id"];
        for (int p : m["serving"]) serving_by[id].insert(p);
        if (id == in.id) {
          owned_here = m["owned"].get<std::vector<int>>();
          for (int p : m["standby"]) standby_here.insert(p);
        }
      }
      for (const std::string& id : live) {
        if (serving_by[id].empty()) {
          *why = in.id + " sees " + id + " owning nothing yet";
          return false;
        }
      }
      for (int p = 0; p < partitions_; ++p) {
        const json& owner = routing["partitions"][std::to_string(p)];
        if (!owner.is_string() || !live.contains(owner.get<std::string>())) {
          *why = in.id + " routes partition " + std::to_string(p) + " to " + owner.dump();
          return false;
        }
        if (!serving_by[owner.get<std::string>()].contains(p)) {
          *why = in.id + " sees partition " + std::to_string(p) + " restoring on " + owner.dump();
          return false;
        }
      }
      // Owned partitions, and the standbys this instance is asked to keep, have caught up.
      std::set<int> standby_kept;
      for (const json& p : j["details"]["ingest"]["partitions"]) {
        const int partition = p["partition"];
        if (standby_here.contains(partition)) {
          if (p["role"] != "standby") {
            *why = in.id + " partition " + std::to_string(partition) + " is " + p["role"].dump() +
                   ", not a standby yet";
            return false;
          }
          standby_kept.insert(partition);
        } else if (std::find(owned_here.begin(), owned_here.end(), partition) == owned_here.end()) {
          continue;
        }
        if (p["next_offset"].get<int64_t>() != high[partition]) {
          *why = in.id + " partition " + std::to_string(partition) + " at " +
                 p["next_offset"].dump() + " of " + std::to_string(high[partition]);
          return false;
        }
      }
      if (standby_kept != standby_here) {
        *why = in.id + " keeps " + std::to_string(standby_kept.size()) + " of its " +
               std::to_string(standby_here.size()) + " standbys";
        return false;
      }
    }
    return true;
  }

  // Longer than a member's session timeout (tallyd's default 6 s; 3 s as Start() runs it) plus the
  // broker's session check: a calm this long outlasts a rebalance still due from a killed member
  // (the embedded broker ignores static membership, so the old session expires on its own) or from
  // heartbeats lost while a coordinator was unreachable.
  static constexpr Millis kSessionCalm{8000};

  // Settled at every look (every 200 ms) for `calm` in a row: a rebalance still due (a killed
  // member's session expiring) starts the calm over. Within `timeout` in all; the failure carries
  // the reason of the last look and every instance's log tail.
  ::testing::AssertionResult WaitStable(Millis timeout, Millis calm = kSessionCalm) {
    const auto deadline = Clock::now() + timeout;
    std::string why;
    std::optional<Clock::time_point> calm_since;
    while (Clock::now() < deadline) {
      if (Settled(&why)) {
        if (!calm_since) calm_since = Clock::now();
        if (Clock::now() - *calm_since >= calm) return ::testing::AssertionSuccess();
      } else {
        calm_since.reset();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    auto failure = ::testing::AssertionFailure() << "group not settled";
    if (calm.count() > 0) failure << " for " << calm.count() << " ms in a row";
    failure << ": " << why;
    for (Instance& in : instances_) {
      if (in.process) failure << "\n--- " << in.id << ":\n" << in.process->LogTail();
    }
    return failure;
  }

  // Every partition served by a live owner that has caught up, at one look (see Settled).
  ::testing::AssertionResult WaitSettled(Millis timeout) { return WaitStable(timeout, Millis(0)); }

 private:
  Stack* stack_;
  int partitions_;
  std::string group_name_;
  int cache_ttl_s_ = 0;
  std::vector<Instance> instances_;
};

// The same request's body through every instance, with the parts that depend on when it was
// computed blanked (cache times, cursors).
std::string Normalized(std::string body);

// `target` answers 200 with the same (normalized) body through every instance.
void CheckSameEverywhere(Group& group, const std::string& target);

// The first Super Agents page of `ws` and the page after it hold the same rows through every
// instance (a cursor goes back to the instance that issued it).
void CheckCursorPagesEverywhere(Group& group, const std::string& ws);

// Request analytics through every instance, over every organization and narrowed to each one,
// against `ref`.
void CheckRequestsEverywhere(Group& group, const RequestsReference& ref, const char* phase);

// The leaderboard of every workspace through every instance, against `ref`.
void CheckLeaderboardEverywhere(Group& group, const LeaderboardReference& ref,
                                const std::vector<std::string>& workspaces);

// Super Agents of every workspace through every instance, every page, in two sorts, against
// `ref`.
void CheckSuperagentsEverywhere(Group& group, const SuperagentsReference& ref,
                                const std::vector<std::string>& workspaces, const char* phase);

// The independent references of every endpoint family, fed from the same raw lines.
struct References {
  ReferenceModel metrics{Stack::kToday};
  RequestsReference requests;
  LeaderboardReference leaderboard;
  SuperagentsReference superagents;

  explicit References(const std::vector<std::string>& lines);
};

// Every endpoint family through every instance against `refs`: a sample of workspace metrics,
// leaderboards, Super Agents (cursor pages included) and request analytics. Failures are
// reported with `phase`.
void CheckEveryInstance(Group& group, const References& refs,
                        const std::vector<std::string>& workspaces, const char* phase);

}  // namespace tally::integration
