// A group of tallyd instances on one consumer group: `tally broker --partitions 12`, three
// tallyd with one --group and their own --advertise-url and data directories, generated events
// produced through Kafka. Workspace metrics answered through each instance (locally or forwarded
// to the owner of the workspace's partition) must equal the reference model; the leaderboard and
// the Super Agents list must be the same bytes through every instance. Then one instance is
// killed with SIGKILL: within 60 s both survivors own every partition and answer exactly again.
// Then a fourth instance joins with an empty data directory and, once ready, answers exactly.
// Then a fifth joins: with two standby replicas each partition now lives on three of the four
// instances, and each instance drops the views of the partitions it neither owns nor keeps
// (--drop-idle-partitions-after) and still answers exactly. Finally the newest instance but one
// is killed: the survivors take its partitions and keep standbys of every partition again,
// restoring from the log those whose views they had dropped, and answer exactly.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "harness.h"
#include "http/testing/free_port.h"
#include "kafka/admin.h"
#include "leaderboard_reference.h"
#include "metrics_compare.h"
#include "reference.h"
#include "requests_reference.h"
#include "superagents_reference.h"

namespace tally::integration {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
constexpr const char* kAdminToken = "it-cluster-admin";
constexpr const char* kTenantToken = "it-cluster-tenant";
constexpr int kPartitions = 12;
constexpr const char* kGroup = "tally-cluster-it";

double Elapsed(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

struct Instance {
  std::string id;
  std::string host_port;
  std::unique_ptr<Process> process;
  std::unique_ptr<HttpClient> http;
};

class Group {
 public:
  explicit Group(Stack* stack) : stack_(stack) {}

  // Starts instance `id` on its data directory (kept across restarts of the same id).
  ::testing::AssertionResult Start(const std::string& id, int standby_replicas = 2,
                                   double drop_idle_after_s = 2) {
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
        kGroup, "--instance-id", id, "--data-dir", stack_->dir().File("data-" + id), "--listen",
        in.host_port, "--advertise-url", "http://" + in.host_port, "--port-file", port_file,
        "--keys", stack_->dir().File("keys.toml"), "--cache-ttl", "0", "--now", Stack::kNow,
        "--max-future", "1d",
        // A killed member's partitions move within seconds.
        "--kafka-option", "session.timeout.ms=3000", "--kafka-option", "heartbeat.interval.ms=300",
        // By default every survivor of a failure keeps a warm copy of every partition it does
        // not own, and the views of partitions neither owned nor kept as a standby go soon.
        "--standby-replicas", std::to_string(standby_replicas), "--drop-idle-partitions-after",
        std::to_string(drop_idle_after_s)};
    if (Status s = in.process->Start(argv, stack_->dir().File(id)); !s) {
      return ::testing::AssertionFailure() << s.error().message;
    }
    auto addr = WaitForFile(port_file, Millis(60000), in.process.get());
    if (!addr) return ::testing::AssertionFailure() << addr.error().message;
    in.http = std::make_unique<HttpClient>(*addr);
    instances_.push_back(std::move(in));
    return ::testing::AssertionSuccess();
  }

  // Stops instance `id` with `sig` (SIGKILL: a crash; SIGTERM: a graceful stop) and forgets it.
  void Kill(const std::string& id, int sig = SIGKILL) {
    for (auto it = instances_.begin(); it != instances_.end(); ++it) {
      if (it->id == id) {
        it->process->Stop(sig);
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
    for (int p = 0; p < kPartitions; ++p) {
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
      const json& routing = j["details"]["cluster"]["routing"];
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
      for (int p = 0; p < kPartitions; ++p) {
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

  ::testing::AssertionResult WaitSettled(Millis timeout) {
    const auto deadline = Clock::now() + timeout;
    std::string why;
    while (Clock::now() < deadline) {
      if (Settled(&why)) return ::testing::AssertionSuccess();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    auto failure = ::testing::AssertionFailure() << "group not settled: " << why;
    for (Instance& in : instances_) failure << "\n--- " << in.id << ":\n" << in.process->LogTail();
    return failure;
  }

 private:
  Stack* stack_;
  std::vector<Instance> instances_;
};

// The same request's body through every instance, with the parts that depend on when it was
// computed blanked.
std::string Normalized(std::string body) {
  // Cursors name a result set cached by the instance that answered the first page.
  for (const char* key : {"\"cached_at\":", "\"generated_at\":", "\"next_cursor\":"}) {
    size_t at = body.find(key);
    while (at != std::string::npos) {
      size_t from = at + std::string_view(key).size();
      size_t to = body.find_first_of(",}", from);
      body.replace(from, to - from, "null");
      at = body.find(key, from);
    }
  }
  return body;
}

void CheckSameEverywhere(Group& group, const std::string& target) {
  std::string first_body, first_id;
  for (Instance& in : group.instances()) {
    auto r =
        in.http->Send("GET", target, {{"Authorization", std::string("Bearer ") + kAdminToken}});
    ASSERT_TRUE(r) << in.id << " " << target << ": " << r.error().message;
    EXPECT_EQ(r->status, 200) << in.id << " " << target << ": " << r->body.substr(0, 300);
    std::string body = Normalized(r->body);
    if (first_id.empty()) {
      first_id = in.id;
      first_body = std::move(body);
    } else {
      EXPECT_EQ(body, first_body) << target << " differs between " << first_id << " and " << in.id;
    }
  }
}

// Cursor pages: the first page and the page after it, through every instance (the cursor goes
// back to the instance that issued it), hold the same rows everywhere.
void CheckCursorPagesEverywhere(Group& group, const std::string& ws) {
  std::string first_rows, first_id;
  for (Instance& in : group.instances()) {
    const std::pair<std::string, std::string> auth{"Authorization",
                                                   std::string("Bearer ") + kAdminToken};
    const std::string base = "/api/v1/monitoring/" + UrlEncode(ws) + "/superagents";
    auto p1 = in.http->Send("GET", base + "?limit=3&from=2025-12-01&to=2026-03-01", {auth});
    ASSERT_TRUE(p1);
    ASSERT_EQ(p1->status, 200) << p1->body;
    json j1 = json::parse(p1->body);
    ASSERT_TRUE(j1["pagination"]["has_more"].get<bool>()) << p1->body;
    const std::string cursor = j1["pagination"]["next_cursor"];
    auto p2 = in.http->Send("GET", base + "?limit=3&cursor=" + UrlEncode(cursor), {auth});
    ASSERT_TRUE(p2);
    ASSERT_EQ(p2->status, 200) << in.id << ": " << p2->body;
    json j2 = json::parse(p2->body);
    const std::string rows = j1["superagents"].dump() + j2["superagents"].dump();
    EXPECT_EQ(j2["superagents"].size(), 3u) << p2->body;
    if (first_id.empty()) {
      first_id = in.id;
      first_rows = rows;
    } else {
      EXPECT_EQ(rows, first_rows) << "pages through " << in.id << " and " << first_id;
    }
  }
}

// A key holding one workspace reads it through every instance (owner or not) and nothing else:
// another workspace is 403 everywhere, whichever instance owns it.
void CheckTenantEverywhere(Group& group, const ReferenceModel& ref,
                           const std::vector<std::string>& workspaces) {
  std::vector<MetricsCall> mine = AllCombinations(workspaces.front(), "");
  mine.resize(std::min<size_t>(mine.size(), 20));
  for (Instance& in : group.instances()) {
    EXPECT_EQ(CheckAll(*in.http, kTenantToken, ref, mine, 3), 0) << "through " << in.id;
    for (size_t w = 1; w < workspaces.size(); ++w) {
      const std::pair<std::string, std::string> auth{"Authorization",
                                                     std::string("Bearer ") + kTenantToken};
      auto metrics =
          in.http->Send("GET",
                        "/api/v1/workspaces/metrics?workspace_uuid=" + UrlEncode(workspaces[w]) +
                            "&entity=agents&metric=executions&aggregation=count&period=90d",
                        {auth});
      ASSERT_TRUE(metrics);
      EXPECT_EQ(metrics->status, 403) << in.id << " " << workspaces[w] << ": " << metrics->body;
      auto listing = in.http->Send(
          "GET", "/api/v1/monitoring/" + UrlEncode(workspaces[w]) + "/superagents", {auth});
      ASSERT_TRUE(listing);
      EXPECT_EQ(listing->status, 403) << in.id << " " << workspaces[w] << ": " << listing->body;
    }
  }
}

// Request analytics through every instance, for the admin key over every organization and
// narrowed to each one (organizations span workspaces owned by different instances: the answer
// merges their shares), against the reference.
void CheckRequestsEverywhere(Group& group, const RequestsReference& ref, const char* phase) {
  std::vector<std::optional<std::string>> orgs = {std::nullopt};
  for (const std::string& org : ref.Organizations()) orgs.push_back(org);
  const std::vector<std::pair<std::string, std::string>> ranges = {
      {"2026-02-01", "2026-03-01"}, {"2026-01-01", "2026-03-01"}, {"2026-02-14", "2026-02-14"}};
  int failures = 0;
  size_t requests = 0;
  for (Instance& in : group.instances()) {
    for (const auto& org : orgs) {
      ReqQuery q;
      std::vector<std::pair<std::string, std::string>> headers = {
          {"Authorization", std::string("Bearer ") + kAdminToken}};
      if (org) {
        q.organizations = std::set<std::string>{*org};
        headers.emplace_back("organization-id", *org);
      }
      for (const auto& [start, end] : ranges) {
        q.start_date = start;
        q.end_date = end;
        const std::map<std::string, json> want = ref.AnswerAll(q);
        for (const char* endpoint : kRequestEndpoints) {
          const std::string target = std::string("/v1/analytics/requests/") + endpoint +
                                     "?startDate=" + start + "&endDate=" + end;
          auto r = in.http->Send("GET", target, headers);
          ++requests;
          std::string diff;
          if (!r) {
            diff = r.error().message;
          } else if (r->status != 200) {
            diff = "status " + std::to_string(r->status) + ": " + r->body.substr(0, 300);
          } else {
            json got = json::parse(r->body, nullptr, false);
            diff = got.is_discarded() ? "not JSON" : DiffRequestsJson(got, want.at(endpoint));
          }
          if (!diff.empty() && ++failures <= 10) {
            ADD_FAILURE() << phase << ": through " << in.id << " GET " << target
                          << (org ? " organization-id: " + *org : std::string()) << "\n    "
                          << diff;
          }
        }
      }
    }
  }
  EXPECT_EQ(failures, 0) << phase;
  std::fprintf(stderr, "[cluster_e2e] %s: %zu request-analytics requests\n", phase, requests);
}

// The leaderboard of every workspace through every instance, against the reference.
void CheckLeaderboardEverywhere(Group& group, const LeaderboardReference& ref,
                                const std::vector<std::string>& workspaces) {
  const int64_t from = *RefParseTimeMillis("2026-01-15T00:00:00Z") / 86'400'000;
  const int64_t to = *RefParseTimeMillis("2026-03-01T00:00:00Z") / 86'400'000;
  for (Instance& in : group.instances()) {
    for (const std::string& ws : workspaces) {
      const std::string target =
          "/api/agents/leaderboard?limit=100&workspace_uuid=" + UrlEncode(ws) +
          "&date_from=2026-01-15&date_to=2026-03-01";
      auto r =
          in.http->Send("GET", target, {{"Authorization", std::string("Bearer ") + kAdminToken}});
      ASSERT_TRUE(r) << r.error().message;
      ASSERT_EQ(r->status, 200) << in.id << " " << target << ": " << r->body.substr(0, 300);
      EXPECT_TRUE(SameLeaderboard(json::parse(r->body), ref.Expected(ws, from, to, 100, {})))
          << "through " << in.id << ": " << target;
    }
  }
}

// Every instance answers workspace metrics (a sample of the combinations) like the reference,
// and the leaderboard and the Super Agents list like each other.
// Super Agents of every workspace through every instance, every page (7 rows a page, so the
// cursors go back to the owner), in two sorts, against the reference.
void CheckSuperagentsEverywhere(Group& group, const SuperagentsReference& ref,
                                const std::vector<std::string>& workspaces, const char* phase) {
  const int64_t today = *RefParseDay(Stack::kToday);
  const int64_t from = *RefParseDay("2026-01-15");
  const std::pair<std::string, std::string> auth{"Authorization",
                                                 std::string("Bearer ") + kAdminToken};
  size_t rows = 0;
  for (const char* sort : {"-total_credits_consumed", "superagent_name"}) {
    for (const std::string& ws : workspaces) {
      const std::vector<json> want = ref.Rows(ws, from, today, sort, "", "", today);
      rows += want.size();
      for (Instance& in : group.instances()) {
        SCOPED_TRACE(std::string(phase) + ": " + ws + " through " + in.id + ", sort " + sort);
        std::vector<json> got;
        std::string cursor;
        for (int page = 0; page < 100; ++page) {
          std::string target = "/api/v1/monitoring/" + UrlEncode(ws) +
                               "/superagents?limit=7&from=2026-01-15&to=2026-03-01&sort=" + sort;
          if (!cursor.empty()) {
            target = "/api/v1/monitoring/" + UrlEncode(ws) +
                     "/superagents?limit=7&cursor=" + UrlEncode(cursor);
          }
          auto r = in.http->Send("GET", target, {auth});
          ASSERT_TRUE(r);
          ASSERT_EQ(r->status, 200) << r->body;
          json body = NormalizeSuperagents(json::parse(r->body));
          EXPECT_EQ(body["pagination"]["total"], want.size());
          for (json& row : body["superagents"]) got.push_back(std::move(row));
          if (!body["pagination"]["has_more"].get<bool>()) break;
          cursor = body["pagination"]["next_cursor"];
        }
        ASSERT_EQ(got.size(), want.size());
        for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << "row " << i;
      }
    }
  }
  EXPECT_GT(rows, 50u) << "the data should hold agents in every workspace";
}

// The independent references of every endpoint family, fed from the same raw lines.
struct References {
  ReferenceModel metrics{Stack::kToday};
  RequestsReference requests;
  LeaderboardReference leaderboard;
  SuperagentsReference superagents;

  explicit References(const std::vector<std::string>& lines) {
    for (const std::string& line : lines) {
      if (metrics.Add(line) == RefVerdict::kAccepted) {
        leaderboard.Add(line);
        if (auto e = SuperagentsEventOf(line)) superagents.Add(*e);
      }
      requests.Add(line);
    }
  }
};

// Every endpoint family through every instance against `refs`: a sample of workspace metrics,
// leaderboards, Super Agents (cursor pages included) and request analytics.
void CheckEveryInstance(Group& group, const References& refs,
                        const std::vector<std::string>& workspaces, const char* phase) {
  const auto t0 = Clock::now();
  size_t requests = 0;
  for (Instance& in : group.instances()) {
    for (size_t w = 0; w < workspaces.size(); ++w) {
      std::vector<MetricsCall> all = AllCombinations(workspaces[w], "");
      std::vector<MetricsCall> sample;
      // A different slice of the combinations through each instance and workspace.
      for (size_t i = (w * 3 + in.id.size()) % 11; i < all.size(); i += 11) {
        sample.push_back(all[i]);
      }
      requests += sample.size();
      EXPECT_EQ(CheckAll(*in.http, kAdminToken, refs.metrics, sample, 5), 0)
          << phase << ": through " << in.id << ", workspace " << workspaces[w];
    }
  }
  for (const std::string& ws : workspaces) {
    CheckSameEverywhere(group, "/api/agents/leaderboard?workspace_uuid=" + UrlEncode(ws) +
                                   "&date_from=2026-01-01&date_to=2026-03-01");
    CheckSameEverywhere(group, "/api/v1/monitoring/" + UrlEncode(ws) +
                                   "/superagents?limit=5&from=2025-12-01&to=2026-03-01");
  }
  CheckCursorPagesEverywhere(group, workspaces.front());
  CheckLeaderboardEverywhere(group, refs.leaderboard, workspaces);
  CheckSuperagentsEverywhere(group, refs.superagents, workspaces, phase);
  std::fprintf(stderr, "[cluster_e2e] %s: %zu metrics requests through %zu instances in %.1f s\n",
               phase, requests, group.instances().size(), Elapsed(t0));
  CheckRequestsEverywhere(group, refs.requests, phase);
}

TEST(ClusterE2E, EveryInstanceAnswersExactlyThroughFailoverAndScaleUp) {
  gen::GenOptions o;
  o.seed = 20261207;
  o.events = 12000;
  o.workspaces = 12;
  o.organizations = 4;
  o.users = 300;
  o.end_day = Stack::kToday;
  o.days = 60;
  o.duplicate_fraction = 0.02;
  Dataset data = GenerateDataset(o);
  References refs(data.lines);
  ASSERT_GE(refs.requests.Organizations().size(), 2u);

  Stack stack;
  stack.keys().push_back(KeySpec::Admin("it-admin", kAdminToken));
  const std::vector<std::string> workspaces = refs.metrics.WorkspacesByActivity();
  ASSERT_EQ(workspaces.size(), 12u);
  {
    // A tenant owning one workspace, for the isolation checks through every instance.
    KeySpec tenant;
    tenant.name = "it-tenant";
    tenant.token = kTenantToken;
    tenant.user_id = "tenant-user";
    tenant.workspaces[workspaces.front()] = "owner";
    stack.keys().push_back(tenant);
  }
  ASSERT_TRUE(stack.StartBroker(kPartitions));
  ASSERT_TRUE(WriteKeysFile(stack.dir().File("keys.toml"), stack.keys()));
  Group group(&stack);
  for (const char* id : {"node-a", "node-b", "node-c"}) ASSERT_TRUE(group.Start(id));
  ASSERT_TRUE(stack.Produce(data.lines, data.keys));
  const auto t_settle = Clock::now();
  ASSERT_TRUE(group.WaitSettled(Millis(120000)));
  std::fprintf(stderr, "[cluster_e2e] three instances settled in %.1f s\n", Elapsed(t_settle));

  // Every instance owns some partitions: the test exercises forwarding, not one busy node.
  for (Instance& in : group.instances()) {
    auto r = in.http->Send("GET", "/readyz");
    ASSERT_TRUE(r);
    json j = json::parse(r->body);
    for (const json& m : j["details"]["cluster"]["routing"]["members"]) {
      if (m["instance_id"] == in.id) {
        EXPECT_FALSE(m["owned"].empty()) << r->body;
      }
    }
  }
  CheckEveryInstance(group, refs, workspaces, "three instances");
  CheckTenantEverywhere(group, refs.metrics, workspaces);

  // The forwarded answers went through the owners: at least one instance forwarded.
  double forwarded = 0;
  for (Instance& in : group.instances()) {
    auto r = in.http->Send("GET", "/metrics");
    ASSERT_TRUE(r);
    forwarded += MetricSum(r->body, "tally_cluster_forwarded_requests_total").value_or(0);
  }
  EXPECT_GT(forwarded, 0);

  // SIGKILL one instance: within 60 s the survivors own everything and answer exactly.
  auto sum_metric = [&group](const char* name) {
    double sum = 0;
    for (Instance& in : group.instances()) {
      auto r = in.http->Send("GET", "/metrics");
      if (r) sum += MetricSum(r->body, name).value_or(0);
    }
    return sum;
  };
  auto gained = [&] { return sum_metric("tally_cluster_partitions_gained_total"); };
  auto warm = [&] { return sum_metric("tally_partitions_taken_from_standby_total"); };
  // Settled: each instance keeps caught-up standbys of the 8 partitions it does not own.
  for (Instance& in : group.instances()) {
    auto r = in.http->Send("GET", "/readyz");
    ASSERT_TRUE(r);
    json j = json::parse(r->body);
    size_t standbys = 0, owned = 0;
    for (const json& p : j["details"]["ingest"]["partitions"]) standbys += p["role"] == "standby";
    for (const json& m : j["details"]["cluster"]["routing"]["members"]) {
      if (m["instance_id"] == in.id) owned = m["owned"].size();
    }
    EXPECT_EQ(standbys + owned, static_cast<size_t>(kPartitions)) << in.id << ": " << r->body;
  }
  group.Kill("node-b");
  const double gained_before = gained();
  const double warm_before = warm();
  const auto t_kill = Clock::now();
  ASSERT_TRUE(group.WaitSettled(Millis(60000)));
  const double failover_s = Elapsed(t_kill);
  std::fprintf(stderr, "[cluster_e2e] failover after SIGKILL settled in %.1f s\n", failover_s);
  EXPECT_LT(failover_s, 60);
  EXPECT_GT(gained(), gained_before) << "the survivors took the killed instance's partitions";
  // Each survivor kept a standby of every partition it took: none was replayed from the log.
  EXPECT_EQ(warm() - warm_before, gained() - gained_before);
  CheckEveryInstance(group, refs, workspaces, "two survivors");

  // A fourth instance with an empty data directory joins and answers exactly once settled.
  ASSERT_TRUE(group.Start("node-d"));
  const auto t_join = Clock::now();
  ASSERT_TRUE(group.WaitSettled(Millis(120000)));
  std::fprintf(stderr, "[cluster_e2e] a new instance settled in %.1f s\n", Elapsed(t_join));
  CheckEveryInstance(group, refs, workspaces, "after a new instance joined");

  // A fifth instance: each partition now lives on three of four instances, and the views of the
  // others are dropped (the instances started with empty data directories keep state per
  // partition).
  const double dropped_before = sum_metric("tally_partitions_dropped_total");
  ASSERT_TRUE(group.Start("node-e"));
  ASSERT_TRUE(group.WaitSettled(Millis(120000)));
  const auto t_drop = Clock::now();
  std::map<std::string, int> idle;
  while (Elapsed(t_drop) < 30) {
    idle = group.IdlePartitions();
    bool none = idle.size() == group.instances().size();
    for (const auto& [id, n] : idle) none = none && n == 0;
    if (none) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  for (const auto& [id, n] : idle) EXPECT_EQ(n, 0) << id << " still keeps idle partitions";
  ASSERT_TRUE(group.WaitSettled(Millis(60000)));
  const double dropped = sum_metric("tally_partitions_dropped_total") - dropped_before;
  std::fprintf(stderr, "[cluster_e2e] five instances: %.0f partitions' views dropped\n", dropped);
  // a, c and d each kept all 12 partitions before; each keeps 9 of them now.
  EXPECT_GE(dropped, 9);
  CheckEveryInstance(group, refs, workspaces, "after idle partitions were dropped");

  // Kill node-d: three survivors keep every partition again, some of which they had dropped.
  group.Kill("node-d");
  const auto t_kill2 = Clock::now();
  ASSERT_TRUE(group.WaitSettled(Millis(60000)));
  std::fprintf(stderr, "[cluster_e2e] failover with dropped partitions settled in %.1f s\n",
               Elapsed(t_kill2));
  CheckEveryInstance(group, refs, workspaces,
                     "after partitions came back to instances that had dropped them");
}

// An instance restarted on a data directory holding views of partitions it no longer gets (an
// earlier run kept them idle) drops them too, and the group still answers exactly.
TEST(ClusterE2E, AnEarlierRunsIdleViewsAreDroppedAfterARestart) {
  gen::GenOptions o;
  o.seed = 20261208;
  o.events = 4000;
  o.workspaces = 12;
  o.organizations = 3;
  o.users = 120;
  o.end_day = Stack::kToday;
  o.days = 30;
  Dataset data = GenerateDataset(o);
  References refs(data.lines);
  Stack stack;
  stack.keys().push_back(KeySpec::Admin("it-admin", kAdminToken));
  const std::vector<std::string> workspaces = refs.metrics.WorkspacesByActivity();
  ASSERT_TRUE(stack.StartBroker(kPartitions));
  ASSERT_TRUE(WriteKeysFile(stack.dir().File("keys.toml"), stack.keys()));
  Group group(&stack);
  ASSERT_TRUE(stack.Produce(data.lines, data.keys));
  // node-a consumes everything alone, then shares with node-b and keeps the rest idle.
  ASSERT_TRUE(group.Start("node-a", 0, 3600));
  ASSERT_TRUE(group.WaitSettled(Millis(120000)));
  ASSERT_TRUE(group.Start("node-b", 0, 3600));
  ASSERT_TRUE(group.WaitSettled(Millis(120000)));
  const int idle_before = group.IdlePartitions()["node-a"];
  EXPECT_GT(idle_before, 0);

  // Restarted with a short grace, node-a drops every stored partition it is not given.
  group.Kill("node-a");
  ASSERT_TRUE(group.Start("node-a", 0, 1));
  ASSERT_TRUE(group.WaitSettled(Millis(120000)));
  auto owned_by = [&](const std::string& id) {
    std::set<int> owned;
    auto r = group.Find(id)->http->Send("GET", "/readyz");
    json j = json::parse(r ? r->body : "{}", nullptr, false);
    for (const json& m : j["details"]["cluster"]["routing"]["members"]) {
      if (m["instance_id"] == id) owned = m["owned"].get<std::set<int>>();
    }
    return owned;
  };
  // Every partition with events that node-a is not given: it held views of each.
  auto expected_drops = [&](const std::set<int>& owned) {
    int n = 0;
    for (int p = 0; p < kPartitions; ++p) {
      auto wm = kafka::Watermarks(stack.bootstrap(), Stack::kTopic, p, 5000);
      n += wm && wm->second > 0 && !owned.contains(p);
    }
    return n;
  };
  double dropped = 0;
  int expected = -1;
  const auto t0 = Clock::now();
  while (Elapsed(t0) < 30) {
    const std::set<int> owned = owned_by("node-a");
    expected = owned.empty() ? -1 : expected_drops(owned);
    auto r = group.Find("node-a")->http->Send("GET", "/metrics");
    if (r) dropped = MetricSum(r->body, "tally_partitions_dropped_total").value_or(0);
    if (expected >= 0 && dropped >= expected) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::fprintf(stderr, "[cluster_e2e] restarted node-a dropped %.0f partitions' views (%d due)\n",
               dropped, expected);
  EXPECT_GT(expected, 0);
  EXPECT_GE(dropped, expected);
  ASSERT_TRUE(group.WaitSettled(Millis(60000)));
  CheckEveryInstance(group, refs, workspaces, "after a restart dropped an earlier run's views");

  // A graceful stop: node-b stores what it consumed and gives its partitions up; with static
  // membership (an --instance-id) the coordinator moves them once the session times out (3 s
  // here) and node-a, holding no copy of them any more, restores them from the log.
  const auto t_stop = Clock::now();
  group.Kill("node-b", SIGTERM);
  ASSERT_TRUE(group.WaitSettled(Millis(60000)));
  const double handover_s = Elapsed(t_stop);
  std::fprintf(stderr,
               "[cluster_e2e] node-b stopped gracefully; node-a serves everything %.1f s later\n",
               handover_s);
  CheckEveryInstance(group, refs, workspaces, "after a graceful stop");
}

// A standby that falls behind the log's retention (its instance paused while the log moved on)
// stops being a standby at the gap, and when its instance later takes the partition over it does
// not serve it: every answer is 503, never a partial count.
TEST(ClusterE2E, AStandbyBehindTheLogsRetentionIsNeverServed) {
  Stack stack;
  stack.keys().push_back(KeySpec::Admin("it-admin", kAdminToken));
  ASSERT_TRUE(stack.StartBroker(1));
  ASSERT_TRUE(WriteKeysFile(stack.dir().File("keys.toml"), stack.keys()));
  std::vector<std::string> lines, keys;
  GenerateEvents(300, 11, &lines, &keys);
  ASSERT_TRUE(stack.Produce(lines, keys));
  Group group(&stack);
  ASSERT_TRUE(group.Start("node-a", 1, -1));
  ASSERT_TRUE(group.Start("node-b", 1, -1));

  // The partition's role and applied offset on `id`, from its /readyz.
  auto partition_on = [&](const std::string& id) -> std::pair<std::string, int64_t> {
    auto r = group.Find(id)->http->Send("GET", "/readyz");
    json j = json::parse(r ? r->body : "{}", nullptr, false);
    if (j.is_discarded()) return {"", -1};
    for (const json& p : j["details"]["ingest"]["partitions"]) {
      if (p["partition"] == 0)
        return {p["role"].get<std::string>(), p["next_offset"].get<int64_t>()};
    }
    return {"", -1};
  };
  auto high = [&] {
    auto wm = kafka::Watermarks(stack.bootstrap(), Stack::kTopic, 0, 5000);
    return wm ? *wm : std::pair<int64_t, int64_t>{-1, -1};
  };
  // Wait for an owner and a caught-up standby.
  std::string owner, standby;
  auto deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline && standby.empty()) {
    const auto [a_role, a_next] = partition_on("node-a");
    const auto [b_role, b_next] = partition_on("node-b");
    const int64_t hi = high().second;
    if (a_role == "owned" && b_role == "standby" && a_next == hi && b_next == hi) {
      owner = "node-a", standby = "node-b";
    } else if (b_role == "owned" && a_role == "standby" && a_next == hi && b_next == hi) {
      owner = "node-b", standby = "node-a";
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  ASSERT_FALSE(standby.empty()) << "no owner with a caught-up standby";

  // The standby's instance pauses while ~13 MB go through the partition: the broker (newest
  // 5 MiB kept) trims what the standby has not read.
  group.Find(standby)->process->Signal(SIGSTOP);
  std::vector<std::string> more, more_keys;
  GenerateEvents(25'000, 12, &more, &more_keys);
  // In chunks the owner catches up with, so that only the paused standby misses events.
  constexpr size_t kChunk = 2000;
  for (size_t at = 0; at < more.size(); at += kChunk) {
    const size_t end = std::min(more.size(), at + kChunk);
    ASSERT_TRUE(stack.Produce({more.begin() + at, more.begin() + end},
                              {more_keys.begin() + at, more_keys.begin() + end}));
    deadline = Clock::now() + std::chrono::seconds(60);
    while (Clock::now() < deadline && partition_on(owner).second != high().second) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  const int64_t standby_next = lines.size();
  ASSERT_GT(high().first, standby_next) << "the log was not trimmed past the standby";
  group.Find(standby)->process->Signal(SIGCONT);

  // It says so, and stops keeping the standby.
  auto trimmed_on = [&](const std::string& id) {
    auto r = group.Find(id)->http->Send("GET", "/metrics");
    return r ? MetricSum(r->body, "tally_log_trimmed_total").value_or(0) : 0;
  };
  deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline && trimmed_on(standby) < 1) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_GE(trimmed_on(standby), 1) << group.Find(standby)->process->LogTail();
  EXPECT_LE(partition_on(standby).second, standby_next) << "views went on past the gap";

  // The owner read everything: it serves the partition.
  EXPECT_EQ(trimmed_on(owner), 0) << group.Find(owner)->process->LogTail();
  auto metrics_of = [&](const std::string& id, const std::string& ws) {
    return group.Find(id)->http->Send(
        "GET",
        "/api/v1/workspaces/metrics?workspace_uuid=" + UrlEncode(ws) +
            "&entity=agents&metric=executions&aggregation=count&period=90d",
        {{"Authorization", std::string("Bearer ") + kAdminToken}});
  };
  std::set<std::string> workspaces(keys.begin(), keys.end());
  for (const std::string& ws : workspaces) {
    auto r = metrics_of(owner, ws);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << ws << ": " << r->body.substr(0, 300);
  }

  // The owner dies; the survivor takes the partition and never serves its partial copy.
  group.Kill(owner);
  deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline && partition_on(standby).first != "owned") {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_EQ(partition_on(standby).first, "owned") << group.Find(standby)->process->LogTail();
  int answers = 0;
  const auto t0 = Clock::now();
  while (Elapsed(t0) < 5) {
    for (const std::string& ws : workspaces) {
      auto r = metrics_of(standby, ws);
      ASSERT_TRUE(r);
      EXPECT_EQ(r->status, 503) << ws << ": " << r->body.substr(0, 300);
      ++answers;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::fprintf(stderr, "[cluster_e2e] %d answers for the trimmed partition, all 503\n", answers);
  EXPECT_NE(group.Find(standby)->process->LogTail(50'000).find("NOT in the views"),
            std::string::npos);
}

}  // namespace
}  // namespace tally::integration
