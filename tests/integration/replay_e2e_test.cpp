// End to end: `tally replay` (rebuild, merge), the live store switch of a serving tallyd,
// and `tally snapshot` + `tallyd --from-snapshot` replicas, over real processes and sockets.
//
// Views are compared as API answers: every tallyd under test is asked the same fixed list of
// queries (a sample of workspace-metrics shapes, the leaderboard, the first Super Agents page and
// the eleven request-analytics endpoints over a few ranges and scopes) and the two collections
// must match (status and body; doubles within 1e-9 relative, but costs are summed as integers so
// bodies are normally byte-identical; `meta.cached_at` and cursors are ignored).
//
//  - ReplayedFilesEqualLiveIngest: tallyd A ingests generated events (duplicates,
//    malformed lines) live from Kafka; the same lines as one .zst file go through
//    `tally replay --mode rebuild` into a fresh data dir, where tallyd B (on its own, empty
//    embedded broker) answers exactly as A. `tally replay --mode merge` of the same file, twice,
//    into B's stopped views changes nothing (all duplicates). Then kill -9 at random moments
//    of a rebuild of the file's first half and of merges of its second half, each rerun to
//    completion: tallyd C on the result answers exactly as A (TALLY_IT_SEED replays the kills).
//  - RebuildWhileServing: A serves and ingests while a producer keeps writing and
//    a query thread hammers it; `tally replay --mode rebuild --from-topic --tallyd A` switches A
//    to the rebuilt store. No query fails, no total drops below what was seen before the
//    rebuild (a total may dip briefly right after the switch: the rebuilt store can be behind
//    the old one's offsets until the consumer catches up; such dips are logged, not failed),
//    and after catch-up A answers as tallyd C that read the whole topic from scratch
//    (and workspace-metrics totals match the brute-force reference): nothing lost or doubled.
//  - SnapshotReplica: `tally snapshot` of A, then tallyd S started with
//    `--from-snapshot` in another consumer group while more events arrive; S continues from the
//    snapshot's offsets (consumes only the new events) and answers as A.
//  - AdminEndpointsAuthAndValidation: 401 / 403 / 422 / 404 of POST /admin/v1/{switch,snapshot}.

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <sys/wait.h>
#include <zstd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "harness.h"
#include "kafka/admin.h"
#include "kafka/embedded_broker.h"
#include "kafka/producer.h"
#include "metrics_compare.h"
#include "reference.h"
#include "requests_reference.h"
#include "store/store.h"
#include "store/testing/store_testing.h"

namespace tally::integration {
namespace {

using nlohmann::json;
using Headers = std::vector<std::pair<std::string, std::string>>;
using SteadyClock = std::chrono::steady_clock;

constexpr const char* kAdminToken = "replay-it-admin-token";
constexpr const char* kMemberToken = "replay-it-member-token";
constexpr int kPartitions = 8;

double Seconds(SteadyClock::time_point since) {
  return std::chrono::duration<double>(SteadyClock::now() - since).count();
}

// ---------------------------------------------------------------------------------------------
// Processes: tallyd anywhere, and one-shot `tally` commands.

// The keys file every tallyd of a test uses: an admin key and a member key of `member_ws`.
std::string WriteKeys(TempDir& dir, const std::string& member_ws) {
  KeySpec member;
  member.name = "member";
  member.token = kMemberToken;
  member.user_id = "member-user";
  member.workspaces[member_ws] = "member";
  const std::string path = dir.File("keys.toml");
  Status s = WriteKeysFile(path, {KeySpec::Admin("admin", kAdminToken), member});
  EXPECT_TRUE(s) << (s ? "" : s.error().message);
  return path;
}

// A tallyd on any broker ("embedded" = its own), data dir and consumer group, with catch-up
// detection against the broker's watermarks. Not thread-safe (queries from other threads use
// their own HttpClient on host_port()).
class Tallyd {
 public:
  Tallyd(TempDir* dir, std::string name) : dir_(dir), name_(std::move(name)) {}
  ~Tallyd() {
    process_.Stop(SIGKILL);
    if (meta_) rd_kafka_destroy(meta_);
  }

  ::testing::AssertionResult Start(const std::string& brokers, const std::string& data_dir,
                                   const std::string& group, const std::string& keys_file,
                                   const std::vector<std::string>& extra = {}) {
    const std::string port_file = dir_->File(name_ + ".port");
    std::remove(port_file.c_str());
    std::vector<std::string> argv = {TallydBinary(),
                                     "--brokers",
                                     brokers,
                                     "--topic",
                                     Stack::kTopic,
                                     "--group",
                                     group,
                                     "--data-dir",
                                     data_dir,
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--port-file",
                                     port_file,
                                     "--keys",
                                     keys_file,
                                     "--cache-ttl",
                                     "0",
                                     "--now",
                                     Stack::kNow,
                                     "--partitions",
                                     std::to_string(kPartitions)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    if (Status s = process_.Start(argv, dir_->File(name_)); !s) {
      return ::testing::AssertionFailure() << s.error().message;
    }
    Result<std::string> addr = WaitForFile(port_file, Millis(60000), &process_);
    if (!addr) return ::testing::AssertionFailure() << addr.error().message;
    host_port_ = *addr;
    http_.Reset(host_port_);
    std::string bootstrap = brokers;
    if (brokers == "embedded") {
      Result<std::string> b = kafka::ReadBrokerAddressFile(data_dir + "/broker.addr", Millis(30000),
                                                           [this] { return !process_.Running(); });
      if (!b)
        return ::testing::AssertionFailure() << b.error().message << "\n" << process_.LogTail();
      bootstrap = *b;
    }
    if (bootstrap != bootstrap_) {
      if (meta_) rd_kafka_destroy(meta_);
      meta_ = nullptr;
      bootstrap_ = bootstrap;
      char errstr[512];
      rd_kafka_conf_t* conf = rd_kafka_conf_new();
      rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap_.c_str(), errstr, sizeof errstr);
      rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
      meta_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
      if (!meta_) return ::testing::AssertionFailure() << "rd_kafka_new: " << errstr;
    }
    return ::testing::AssertionSuccess();
  }

  // Polls /readyz until ready and every partition's next_offset equals its high watermark.
  ::testing::AssertionResult WaitForCatchUp(Millis timeout) {
    const auto deadline = SteadyClock::now() + timeout;
    std::string state = "no answer yet";
    for (;;) {
      if (!process_.Running()) {
        return ::testing::AssertionFailure()
               << name_ << " is not running (" << process_.Describe() << ")\n"
               << process_.LogTail();
      }
      if (CaughtUp(&state)) return ::testing::AssertionSuccess();
      if (SteadyClock::now() > deadline) {
        return ::testing::AssertionFailure()
               << name_ << " did not catch up within " << timeout.count()
               << " ms; last state: " << state << "\n"
               << process_.LogTail();
      }
      std::this_thread::sleep_for(Millis(50));
    }
  }

  // SIGTERM (graceful) and reap.
  void Stop() {
    process_.Stop(SIGTERM);
    if (meta_) rd_kafka_destroy(meta_);  // its broker may have been tallyd's embedded one
    meta_ = nullptr;
    bootstrap_.clear();
  }

  HttpClient& http() { return http_; }
  Process& process() { return process_; }
  const std::string& host_port() const { return host_port_; }
  std::string url() const { return "http://" + host_port_; }
  const std::string& bootstrap() const { return bootstrap_; }
  std::string MetricsText() {
    Result<HttpResponse> r = http_.Send("GET", "/metrics");
    return r && r->status == 200 ? r->body : "";
  }

 private:
  bool CaughtUp(std::string* state) {
    Result<HttpResponse> r = http_.Send("GET", "/readyz");
    if (!r) {
      *state = "/readyz: " + r.error().message;
      return false;
    }
    json j = json::parse(r->body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      *state = "/readyz: " + r->body;
      return false;
    }
    const json* ingest = nullptr;
    if (j.contains("ingest")) {
      ingest = &j["ingest"];
    } else if (j.contains("details") && j["details"].is_object() &&
               j["details"].contains("ingest")) {
      ingest = &j["details"]["ingest"];
    }
    const bool ready = j.contains("ready") ? j.value("ready", false)
                                           : j.value("status", "") == std::string("ready");
    std::map<int, int64_t> next;
    if (ingest && ingest->is_object() && ingest->contains("partitions")) {
      for (const json& p : (*ingest)["partitions"]) {
        if (p.value("topic", "") == Stack::kTopic) {
          next[p.value("partition", -1)] = p.value("next_offset", int64_t{-1});
        }
      }
    }
    *state = "/readyz=" + r->body;
    if (!ready) return false;
    for (int p = 0; p < kPartitions; ++p) {
      int64_t lo = 0, hi = 0;
      if (rd_kafka_query_watermark_offsets(meta_, Stack::kTopic, p, &lo, &hi, 5000)) return false;
      auto it = next.find(p);
      const int64_t consumed_to = it == next.end() ? lo : it->second;
      if (consumed_to != hi) {
        *state += " (p" + std::to_string(p) + " high " + std::to_string(hi) + ")";
        return false;
      }
    }
    return true;
  }

  TempDir* dir_;
  std::string name_;
  Process process_;
  HttpClient http_;
  std::string host_port_;
  std::string bootstrap_;
  rd_kafka_t* meta_ = nullptr;
};

struct CliRun {
  int exit_code = -1;  // -1: did not exit normally within the timeout
  std::string out;     // stdout
  std::string err;     // stderr
  std::string Describe() const {
    return "exit " + std::to_string(exit_code) + "\n--- stdout:\n" + out + "\n--- stderr:\n" +
           err.substr(err.size() > 4000 ? err.size() - 4000 : 0);
  }
};

// Runs `tally <args>` to completion; its output is logged under <dir>/<log_name>.{out,err}.
CliRun RunTally(TempDir& dir, const std::string& log_name, const std::vector<std::string>& args,
                Millis timeout = Millis(120000)) {
  CliRun run;
  std::vector<std::string> argv = {TallyBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  Process p;
  if (Status s = p.Start(argv, dir.File(log_name)); !s) {
    run.err = s.error().message;
    return run;
  }
  Result<int> status = p.Wait(timeout);
  if (status && WIFEXITED(*status)) run.exit_code = WEXITSTATUS(*status);
  if (!status) p.Stop(SIGKILL);
  run.out = ReadFileOrEmpty(dir.File(log_name + ".out"));
  run.err = ReadFileOrEmpty(dir.File(log_name + ".err"));
  return run;
}

// The numbers of `tally replay`'s summary line "replay summary: read 1,234, applied ...".
struct ReplaySummary {
  int64_t read = -1, applied = -1, duplicates = -1, rejected = -1;
};
std::optional<ReplaySummary> ParseSummary(const std::string& out) {
  size_t at = out.rfind("replay summary:");
  if (at == std::string::npos) return std::nullopt;
  std::string line = out.substr(at, out.find('\n', at) - at);
  line.erase(std::remove(line.begin(), line.end(), ','), line.end());
  ReplaySummary s;
  long long r, a, d, x;
  if (std::sscanf(line.c_str(),
                  "replay summary: read %lld applied %lld duplicates %lld rejected %lld", &r, &a,
                  &d, &x) != 4) {
    return std::nullopt;
  }
  s.read = r, s.applied = a, s.duplicates = d, s.rejected = x;
  return s;
}

// Writes `lines` as one zstd-compressed NDJSON file (libzstd, in process).
::testing::AssertionResult WriteZstd(const std::string& path,
                                     const std::vector<std::string>& lines) {
  std::string raw;
  for (const std::string& l : lines) raw.append(l).push_back('\n');
  std::string out(ZSTD_compressBound(raw.size()), '\0');
  const size_t n = ZSTD_compress(out.data(), out.size(), raw.data(), raw.size(), 3);
  if (ZSTD_isError(n)) return ::testing::AssertionFailure() << ZSTD_getErrorName(n);
  out.resize(n);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << out;
  if (!f) return ::testing::AssertionFailure() << "cannot write " << path;
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------------------------------------
// "All answers" of a tallyd for a fixed list of queries, and their comparison.

struct ApiQuery {
  std::string label;  // unique; names the query in diffs
  std::string method = "GET";
  std::string target;
  std::string body;
  Headers headers;
  int expect_status = 200;  // 0: any (only compared between servers)
};

struct ApiAnswer {
  int status = 0;
  std::string body;
};
using Answers = std::map<std::string, ApiAnswer>;  // label -> answer

// Drops what legitimately differs between two servers with the same views: response-cache
// timestamps and opaque (signed, server-bound) cursors.
void StripVolatile(json* j) {
  if (j->is_object()) {
    for (const char* k : {"cached_at", "next_cursor"}) {
      if (j->contains(k)) (*j)[k] = nullptr;
    }
    for (auto& [k, v] : j->items()) StripVolatile(&v);
  } else if (j->is_array()) {
    for (json& v : *j) StripVolatile(&v);
  }
}

// The query list, built from the data (busiest workspaces and users, request organizations and
// agent names): workspace metrics (a deterministic ~1/8 sample of every combination for three
// workspaces, both request forms), the leaderboard (default and explicit ranges, limit, by
// organization), the first Super Agents page (default, sorted, ranged, searched) and the eleven
// request-analytics endpoints over three ranges, for every organization and for one (with and
// without agentName).
std::vector<ApiQuery> AllQueries(const ReferenceModel& ref, const RequestsReference& req) {
  const Headers admin = {{"Authorization", std::string("Bearer ") + kAdminToken}};
  std::vector<ApiQuery> out;
  std::vector<std::string> workspaces = ref.WorkspacesByActivity();
  workspaces.resize(std::min<size_t>(3, workspaces.size()));
  for (const std::string& ws : workspaces) {
    std::vector<std::string> users = ref.UsersByActivity(ws);
    std::vector<MetricsCall> calls = AllCombinations(ws, users.empty() ? "" : users[0]);
    for (size_t i = 0; i < calls.size(); ++i) {
      if (((i * 2654435761u) >> 11) % 8 != 0) continue;
      WireRequest w = BuildRequest(calls[i]);
      out.push_back(
          {"metrics#" + std::to_string(i) + " " + w.method + " " + w.target + " " + w.body,
           w.method, w.target, w.body, admin, SeedRejects(calls[i].query) ? 422 : 200});
    }
    for (const std::string q : {"", "&date_from=2026-01-01&date_to=2026-02-28",
                                "&date_from=2025-12-01&date_to=2026-02-15&limit=5"}) {
      std::string t = "/api/agents/leaderboard?workspace_uuid=" + ws + q;
      out.push_back({"leaderboard " + t, "GET", t, "", admin});
    }
    for (const std::string q :
         {"limit=50", "limit=50&from=2026-01-01&to=2026-02-28",
          "limit=20&from=2025-12-01&to=2026-02-28&sort=superagent_name",
          "limit=50&from=2026-02-01&to=2026-02-28&sort=-message_credits_consumed",
          "limit=50&search=a&visibility=public&from=2026-01-01&to=2026-02-28"}) {
      std::string t = "/api/v1/monitoring/" + ws + "/superagents?" + q;
      out.push_back({"superagents " + t, "GET", t, "", admin});
    }
  }
  for (const std::string& org : req.Organizations()) {
    std::string t = "/api/agents/leaderboard?organization_multiplai_id=" + org;
    out.push_back({"leaderboard " + t, "GET", t, "", admin, 0});  // 200, or 4xx when ambiguous
  }
  std::vector<std::pair<std::string, std::string>> ranges = {
      {"2026-02-28", "2026-02-28"}, {"2026-01-20", "2026-02-10"}, {"2025-11-01", "2026-02-28"}};
  ReqQuery all;
  all.start_date = "2025-11-01";
  all.end_date = "2026-02-28";
  std::vector<std::string> busy = req.BusyAgentNames(all);
  std::set<std::string> orgs = req.Organizations();
  for (const char* endpoint : kRequestEndpoints) {
    for (const auto& [from, to] : ranges) {
      std::string t = std::string("/v1/analytics/requests/") + endpoint + "?startDate=" + from +
                      "&endDate=" + to;
      out.push_back({"requests " + t, "GET", t, "", admin});
      if (!orgs.empty()) {
        Headers h = admin;
        h.emplace_back("organization-id", *orgs.begin());
        out.push_back({"requests " + t + " organization-id=" + *orgs.begin(), "GET", t, "", h});
      }
      if (!busy.empty()) {
        std::string ta = t + "&agentName=" + UrlEncode(busy[0]);
        out.push_back({"requests " + ta, "GET", ta, "", admin});
      }
    }
  }
  return out;
}

// Asks every query (in order) on one connection. A transport error is recorded as status -1.
Answers CollectAnswers(HttpClient& http, const std::vector<ApiQuery>& queries) {
  Answers out;
  for (const ApiQuery& q : queries) {
    Result<HttpResponse> r = http.Send(q.method, q.target, q.headers, q.body);
    ApiAnswer a;
    if (r) {
      a.status = r->status;
      a.body = r->body;
    } else {
      a.status = -1;
      a.body = r.error().message;
    }
    out[q.label] = std::move(a);
  }
  return out;
}

// "" when `got` answers every query of `want` alike (status; JSON bodies by DiffRequestsJson
// after StripVolatile, other bodies byte for byte), else the first `max_diffs` differences.
std::string DiffAnswers(const Answers& got, const Answers& want, int max_diffs = 8) {
  std::string out;
  int diffs = 0;
  for (const auto& [label, w] : want) {
    std::string d;
    auto it = got.find(label);
    if (it == got.end()) {
      d = "missing";
    } else if (it->second.status != w.status) {
      d = "status " + std::to_string(it->second.status) + ", want " + std::to_string(w.status) +
          "\n  got:  " + it->second.body.substr(0, 600) + "\n  want: " + w.body.substr(0, 600);
    } else {
      json g = json::parse(it->second.body, nullptr, false);
      json x = json::parse(w.body, nullptr, false);
      if (g.is_discarded() || x.is_discarded()) {
        if (it->second.body != w.body) d = "body " + it->second.body + " vs " + w.body;
      } else {
        StripVolatile(&g);
        StripVolatile(&x);
        d = DiffRequestsJson(g, x);
        if (!d.empty())
          d += "\n  got:  " + g.dump().substr(0, 800) + "\n  want: " + x.dump().substr(0, 800);
      }
    }
    if (d.empty()) continue;
    if (++diffs <= max_diffs) out += label + ": " + d + "\n";
  }
  if (diffs > max_diffs) out += "... " + std::to_string(diffs - max_diffs) + " more differences\n";
  if (diffs > 0) {
    out = std::to_string(diffs) + " of " + std::to_string(want.size()) + " answers differ:\n" + out;
  }
  return out;
}

// "" when every answer has its query's expected status (so that a comparison is not vacuous),
// else the first few that do not.
std::string UnexpectedStatuses(const Answers& a, const std::vector<ApiQuery>& queries) {
  std::string out;
  int n = 0;
  for (const ApiQuery& q : queries) {
    const ApiAnswer& got = a.at(q.label);
    if (q.expect_status == 0 || got.status == q.expect_status) continue;
    if (++n <= 5) {
      out += q.label + ": " + std::to_string(got.status) + " (want " +
             std::to_string(q.expect_status) + ") " + got.body.substr(0, 300) + "\n";
    }
  }
  if (n > 5) out += "... " + std::to_string(n - 5) + " more\n";
  return out;
}

// ---------------------------------------------------------------------------------------------
// Data.

gen::GenOptions Options(uint64_t seed, int64_t events) {
  gen::GenOptions o;
  o.seed = seed;
  o.events = events;
  o.workspaces = 10;
  o.organizations = 3;
  o.users = 500;
  o.agents = 150;
  o.workflows = 60;
  o.end_day = "2026-02-28";
  o.days = 120;
  o.duplicate_fraction = 0.05;
  o.malformed_fraction = 0.01;
  return o;
}

// Produces `lines` to the stack's broker in chunks, waiting for `node` to catch up after each
// (the embedded broker keeps only the newest 5 MB of a partition).
::testing::AssertionResult ProducePaced(Stack& stack, Tallyd& node,
                                        const std::vector<std::string>& lines,
                                        const std::vector<std::string>& keys, size_t chunk = 5000) {
  for (size_t begin = 0; begin < lines.size(); begin += chunk) {
    const size_t end = std::min(lines.size(), begin + chunk);
    std::vector<std::string> l(lines.begin() + begin, lines.begin() + end);
    std::vector<std::string> k(keys.begin() + begin, keys.begin() + end);
    if (auto r = stack.Produce(l, k); !r) return r;
    if (auto r = node.WaitForCatchUp(Millis(90000)); !r) return r;
  }
  return ::testing::AssertionSuccess();
}

std::string ReadCurrent(const std::string& data_dir) {
  std::string s = ReadFileOrEmpty(data_dir + "/CURRENT");
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// ---------------------------------------------------------------------------------------------
// Replayed files answer like live ingest.

TEST(ReplayE2E, ReplayedFilesEqualLiveIngest) {
  const auto t0 = SteadyClock::now();
  Dataset data = GenerateDataset(Options(5001, 20000));
  ReferenceModel ref(Stack::kToday);
  RequestsReference req;
  for (const std::string& l : data.lines) ref.Add(l), req.Add(l);
  ASSERT_GT(data.malformed, 0u);
  ASSERT_GT(data.duplicates, 0u);

  Stack stack;
  ASSERT_TRUE(stack.StartBroker(kPartitions));
  const std::string keys = WriteKeys(stack.dir(), ref.WorkspacesByActivity().front());
  Tallyd a(&stack.dir(), "tallyd-a");
  ASSERT_TRUE(a.Start(stack.bootstrap(), stack.dir().File("a"), "group-a", keys));
  ASSERT_TRUE(ProducePaced(stack, a, data.lines, data.keys));
  std::fprintf(stderr,
               "[replay_e2e] A ingested %zu lines (%zu malformed, %zu duplicates) in %.1f s\n",
               data.lines.size(), data.malformed, data.duplicates, Seconds(t0));

  const std::vector<ApiQuery> queries = AllQueries(ref, req);
  Answers want = CollectAnswers(a.http(), queries);
  ASSERT_EQ(UnexpectedStatuses(want, queries), "");
  // Self-check of the comparison: the same server asked twice answers alike.
  ASSERT_EQ(DiffAnswers(CollectAnswers(a.http(), queries), want), "");
  // And A is right (the brute-force reference) on a sample of workspace-metrics calls.
  {
    std::vector<MetricsCall> calls = AllCombinations(ref.WorkspacesByActivity().front(), "");
    std::vector<MetricsCall> sample;
    for (size_t i = 0; i < calls.size(); i += 17) sample.push_back(calls[i]);
    EXPECT_EQ(CheckAll(a.http(), kAdminToken, ref, sample), 0);
  }

  const std::string zst = stack.dir().File("events.ndjson.zst");
  ASSERT_TRUE(WriteZstd(zst, data.lines));
  const std::string b_dir = stack.dir().File("b");
  // Small batches: each is written while the next is folded, and re-sent events often repeat
  // one of the batch still being written.
  CliRun rebuild =
      RunTally(stack.dir(), "replay-rebuild",
               {"replay", "--mode", "rebuild", "--data-dir", b_dir, "--batch", "1500", zst});
  ASSERT_EQ(rebuild.exit_code, 0) << rebuild.Describe();
  std::optional<ReplaySummary> s = ParseSummary(rebuild.out);
  ASSERT_TRUE(s) << rebuild.Describe();
  EXPECT_EQ(s->read, static_cast<int64_t>(data.lines.size()));
  EXPECT_EQ(s->rejected, static_cast<int64_t>(data.malformed));
  EXPECT_EQ(s->duplicates, static_cast<int64_t>(data.duplicates));
  EXPECT_EQ(s->applied, static_cast<int64_t>(ref.accepted()));
  EXPECT_NE(rebuild.out.find("CURRENT now names"), std::string::npos) << rebuild.Describe();
  EXPECT_EQ(ReadCurrent(b_dir).rfind("db.rebuild-", 0), 0u) << ReadCurrent(b_dir);

  // B on its own, empty embedded broker: nothing to ingest, the views are the replay's.
  Tallyd b(&stack.dir(), "tallyd-b");
  ASSERT_TRUE(b.Start("embedded", b_dir, "group-b", keys));
  ASSERT_TRUE(b.WaitForCatchUp(Millis(60000)));
  EXPECT_EQ(DiffAnswers(CollectAnswers(b.http(), queries), want), "");
  std::fprintf(stderr, "[replay_e2e] rebuilt B equals A (%zu queries) at %.1f s\n", queries.size(),
               Seconds(t0));

  // Merging the same file into B's stopped views, twice: every valid line is a duplicate.
  b.Stop();
  for (int round = 1; round <= 2; ++round) {
    CliRun merge = RunTally(stack.dir(), "replay-merge-" + std::to_string(round),
                            {"replay", "--mode", "merge", "--data-dir", b_dir, "--batch",
                             round == 1 ? "100000" : "700", zst});
    ASSERT_EQ(merge.exit_code, 0) << merge.Describe();
    std::optional<ReplaySummary> m = ParseSummary(merge.out);
    ASSERT_TRUE(m) << merge.Describe();
    EXPECT_EQ(m->read, static_cast<int64_t>(data.lines.size())) << "round " << round;
    EXPECT_EQ(m->applied, 0) << "round " << round << "\n" << merge.Describe();
    EXPECT_EQ(m->rejected, static_cast<int64_t>(data.malformed)) << "round " << round;
    EXPECT_EQ(m->duplicates, m->read - m->rejected) << "round " << round;
  }
  ASSERT_TRUE(b.Start("embedded", b_dir, "group-b", keys));
  ASSERT_TRUE(b.WaitForCatchUp(Millis(60000)));
  EXPECT_EQ(DiffAnswers(CollectAnswers(b.http(), queries), want), "");
  b.Stop();
  std::fprintf(stderr, "[replay_e2e] merges of the same file changed nothing at %.1f s\n",
               Seconds(t0));

  // kill -9 at random moments of a rebuild of the file's first half, then of merges of its second
  // half, each rerun to completion: nothing lost or counted twice. Batches of 700 events: nearly
  // every kill lands while one batch is written and the next folded.
  std::mt19937_64 rng(TestSeed("replay_e2e"));
  const size_t mid = data.lines.size() / 2;
  const std::string first_half = stack.dir().File("first-half.ndjson.zst");
  const std::string second_half = stack.dir().File("second-half.ndjson.zst");
  ASSERT_TRUE(WriteZstd(first_half,
                        std::vector<std::string>(data.lines.begin(), data.lines.begin() + mid)));
  ASSERT_TRUE(
      WriteZstd(second_half, std::vector<std::string>(data.lines.begin() + mid, data.lines.end())));
  const std::string c_dir = stack.dir().File("c");
  int landed = 0;
  // Runs `tally replay` into `dir` to completion (kill_after = 0) or kills it after kill_after
  // ms; returns its wall time in ms.
  auto replay = [&](const std::string& mode, const std::string& file, const std::string& dir,
                    int kill_after, const std::string& log) -> double {
    const std::vector<std::string> args = {"replay", "--mode",  mode,  "--data-dir",
                                           dir,      "--batch", "700", file};
    const auto start = SteadyClock::now();
    if (kill_after == 0) {
      CliRun run = RunTally(stack.dir(), log, args);
      EXPECT_EQ(run.exit_code, 0) << log << ": " << run.Describe();
      const double ms = Seconds(start) * 1000;
      std::fprintf(stderr, "[replay_e2e] %s: %.0f ms\n", log.c_str(), ms);
      return ms;
    }
    std::vector<std::string> argv = {TallyBinary()};
    argv.insert(argv.end(), args.begin(), args.end());
    Process p;
    Status started = p.Start(argv, stack.dir().File(log));
    EXPECT_TRUE(started) << started.error().message;
    std::this_thread::sleep_for(Millis(kill_after));
    const bool running = p.Running();
    landed += running;
    std::fprintf(stderr, "[replay_e2e] %s: kill after %d ms %s\n", log.c_str(), kill_after,
                 running ? "landed" : "came after the end");
    p.Stop(SIGKILL);
    return Seconds(start) * 1000;
  };
  // The kills land between a tenth and 70 % of a complete run of the same mode, whatever this
  // machine's pace: a merge of the second half can take a third of the rebuild's time. The pace
  // shifts while other work shares the machine, so a kill that comes after the end (that run
  // completed, which is as valid a state to go on from) is retried at half the delay.
  const std::string timing_dir = stack.dir().File("c-timing");
  const double rebuild_ms = replay("rebuild", first_half, timing_dir, 0, "replay-rebuild-timing");
  const double merge_ms = replay("merge", second_half, timing_dir, 0, "replay-merge-timing");
  double pace = 1.0;
  auto kill_round = [&](const std::string& mode, const std::string& file, double run_ms,
                        const std::string& log) {
    for (int attempt = 0; attempt < 3; ++attempt) {
      const double window = run_ms * pace;
      const int kill_after =
          std::uniform_int_distribution<int>(std::max(1, static_cast<int>(window / 10)),
                                             std::max(2, static_cast<int>(window * 0.7)))(rng);
      const int before = landed;
      replay(mode, file, c_dir, kill_after, log + "-" + std::to_string(attempt));
      if (landed > before) return;
      pace /= 2;
    }
  };
  for (int round = 0; round < 3; ++round) {
    kill_round("rebuild", first_half, rebuild_ms, "replay-rebuild-kill-" + std::to_string(round));
  }
  replay("rebuild", first_half, c_dir, 0, "replay-rebuild-after-kills");
  for (int round = 0; round < 4; ++round) {
    kill_round("merge", second_half, merge_ms, "replay-merge-kill-" + std::to_string(round));
  }
  replay("merge", second_half, c_dir, 0, "replay-merge-after-kills");
  EXPECT_GE(landed, 5) << "of 7 rounds; a complete rebuild of half the file took " << rebuild_ms
                       << " ms, a merge of the other half " << merge_ms << " ms";
  Tallyd c(&stack.dir(), "tallyd-c");
  ASSERT_TRUE(c.Start("embedded", c_dir, "group-c", keys));
  ASSERT_TRUE(c.WaitForCatchUp(Millis(60000)));
  EXPECT_EQ(DiffAnswers(CollectAnswers(c.http(), queries), want), "");
  std::fprintf(stderr,
               "[replay_e2e] %d kills landed mid-replay; replayed files vs live done in "
               "%.1f s\n",
               landed, Seconds(t0));
}

// ---------------------------------------------------------------------------------------------
// Rebuild while serving.

// One endpoint the query thread hammers, and how to read a total that only grows as events
// arrive (counts, distinct users, sums of counts).
struct Probe {
  std::string name;
  std::string target;
  std::string body;
  std::string method = "GET";
  bool metrics = false;  // data.total; otherwise the sum of every number in the body
};

double ProbeValue(const Probe& p, const json& body) {
  if (p.metrics) return body.at("data").at("total").get<double>();
  double sum = 0;
  std::function<void(const json&)> walk = [&](const json& j) {
    if (j.is_number()) sum += j.get<double>();
    if (j.is_structured()) {
      for (const json& v : j) walk(v);
    }
  };
  walk(body);
  return sum;
}

TEST(ReplayE2E, RebuildWhileServing) {
  const auto t0 = SteadyClock::now();
  // One stream: the first 12k lines before the rebuild, the rest by a background producer.
  Dataset data = GenerateDataset(Options(5002, 18000));
  const size_t head = 12000;

  Stack stack;
  ASSERT_TRUE(stack.StartBroker(kPartitions));
  ReferenceModel head_ref(Stack::kToday);
  for (size_t i = 0; i < head; ++i) head_ref.Add(data.lines[i]);
  const std::string ws = head_ref.WorkspacesByActivity().front();
  const std::string keys = WriteKeys(stack.dir(), ws);
  const std::string a_dir = stack.dir().File("a");
  Tallyd a(&stack.dir(), "tallyd-a");
  ASSERT_TRUE(a.Start(stack.bootstrap(), a_dir, "group-a", keys));
  ASSERT_TRUE(ProducePaced(stack, a,
                           std::vector<std::string>(data.lines.begin(), data.lines.begin() + head),
                           std::vector<std::string>(data.keys.begin(), data.keys.begin() + head)));

  std::vector<Probe> probes;
  for (const char* entity : {"agents", "workflows"}) {
    MetricsCall c;
    c.query.workspace_id = ws;
    c.query.entity = entity;
    c.query.metric = "executions";
    c.query.aggregation = "count";
    c.query.period = "all";
    WireRequest w = BuildRequest(c);
    probes.push_back({std::string("metrics ") + entity, w.target, w.body, w.method, true});
  }
  for (const char* e : {"total-active-users", "total-requests-per-day"}) {
    probes.push_back(
        {e, std::string("/v1/analytics/requests/") + e + "?startDate=2025-11-01&endDate=2026-02-28",
         "", "GET", false});
  }
  const Headers admin = {{"Authorization", std::string("Bearer ") + kAdminToken}};
  std::vector<double> baseline;
  for (const Probe& p : probes) {
    auto r = a.http().Send(p.method, p.target, admin, p.body);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->status, 200) << p.target << " " << r->body;
    baseline.push_back(ProbeValue(p, json::parse(r->body)));
    ASSERT_GT(baseline.back(), 0) << p.name;
  }

  // Background producer: the rest of the stream at ~400 events/s until told to stop.
  std::atomic<bool> stop_producing{false}, stop_querying{false};
  std::atomic<size_t> produced{head};
  std::string producer_error;
  std::thread producer([&] {
    kafka::ProducerOptions po;
    po.brokers = stack.bootstrap();
    auto p = kafka::Producer::Create(po);
    if (!p) {
      producer_error = p.error().message;
      return;
    }
    size_t i = head;
    while (i < data.lines.size() && !stop_producing.load()) {
      const size_t end = std::min(data.lines.size(), i + 20);
      for (; i < end; ++i) {
        if (Status s = (*p)->Produce(Stack::kTopic, data.keys[i], data.lines[i]); !s) {
          producer_error = s.error().message;
          return;
        }
      }
      if (Status s = (*p)->Flush(30000); !s) {
        producer_error = s.error().message;
        return;
      }
      produced.store(i);
      std::this_thread::sleep_for(Millis(50));
    }
  });

  // Query thread: every answer a 200, never below the baseline, and never lower than the previous
  // answer: queries stay on the old (frozen) store until the rebuilt one has caught up with it.
  std::mutex mu;
  std::vector<std::string> query_errors;
  std::vector<std::string> decreases;
  std::atomic<int64_t> queries_done{0};
  std::thread querier([&] {
    HttpClient http(a.host_port());
    std::vector<double> last = baseline;
    while (!stop_querying.load()) {
      for (size_t i = 0; i < probes.size(); ++i) {
        const Probe& p = probes[i];
        auto r = http.Send(p.method, p.target, admin, p.body);
        queries_done.fetch_add(1);
        std::lock_guard lock(mu);
        if (!r || r->status != 200) {
          if (query_errors.size() < 20) {
            query_errors.push_back(
                p.name + ": " +
                (r ? std::to_string(r->status) + " " + r->body : r.error().message));
          }
          continue;
        }
        json body = json::parse(r->body, nullptr, false);
        if (body.is_discarded()) {
          query_errors.push_back(p.name + ": not JSON: " + r->body);
          continue;
        }
        const double v = ProbeValue(p, body);
        if (v < baseline[i]) {
          query_errors.push_back(p.name + ": " + std::to_string(v) + " below the baseline " +
                                 std::to_string(baseline[i]) + " (partial state)");
        } else if (v < last[i] && decreases.size() < 20) {
          decreases.push_back(p.name + ": " + std::to_string(last[i]) + " -> " + std::to_string(v));
        }
        last[i] = v;
      }
    }
  });

  std::this_thread::sleep_for(Millis(2000));
  const size_t produced_at_rebuild = produced.load();
  CliRun rebuild = RunTally(
      stack.dir(), "replay-rebuild",
      {"replay", "--mode", "rebuild", "--data-dir", a_dir, "--from-topic", "--broker-addr-file",
       stack.dir().File("broker.addr"), "--tallyd", a.url(), "--token", kAdminToken});
  const size_t produced_at_switch = produced.load();
  std::this_thread::sleep_for(Millis(2000));  // live events after the switch
  stop_producing.store(true);
  producer.join();
  std::this_thread::sleep_for(Millis(300));
  stop_querying.store(true);
  querier.join();
  ASSERT_EQ(producer_error, "");
  ASSERT_EQ(rebuild.exit_code, 0) << rebuild.Describe() << "\n" << a.process().LogTail();
  EXPECT_NE(rebuild.out.find("now serves and ingests into db.rebuild-"), std::string::npos)
      << rebuild.Describe();
  std::fprintf(stderr,
               "[replay_e2e] rebuild while serving: %zu lines before the rebuild, %zu when it "
               "ended, %zu in all; %lld queries during it; %zu strict decreases\n",
               produced_at_rebuild, produced_at_switch, produced.load(),
               static_cast<long long>(queries_done.load()), decreases.size());
  EXPECT_TRUE(decreases.empty()) << ::testing::PrintToString(decreases);
  EXPECT_TRUE(query_errors.empty()) << ::testing::PrintToString(query_errors);
  EXPECT_GT(queries_done.load(), 20);
  EXPECT_GT(produced_at_switch, produced_at_rebuild) << "the producer must run during the rebuild";
  EXPECT_GT(produced.load(), produced_at_switch) << "and after the switch";

  ASSERT_TRUE(a.WaitForCatchUp(Millis(60000)));
  const std::string current = ReadCurrent(a_dir);
  EXPECT_EQ(current.rfind("db.rebuild-", 0), 0u) << current;
  // The replaced store is deleted once its last query ended.
  for (int i = 0; i < 100 && std::filesystem::exists(a_dir + "/db"); ++i) {
    std::this_thread::sleep_for(Millis(100));
  }
  EXPECT_FALSE(std::filesystem::exists(a_dir + "/db")) << "the old store was not removed";

  // Nothing lost, nothing doubled: A equals C, which read the whole topic from scratch, and the
  // brute-force reference over every line produced.
  const size_t total = produced.load();
  ReferenceModel ref(Stack::kToday);
  RequestsReference req;
  for (size_t i = 0; i < total; ++i) ref.Add(data.lines[i]), req.Add(data.lines[i]);
  Tallyd c(&stack.dir(), "tallyd-c");
  ASSERT_TRUE(c.Start(stack.bootstrap(), stack.dir().File("c"), "group-c", keys));
  ASSERT_TRUE(c.WaitForCatchUp(Millis(90000)));
  const std::vector<ApiQuery> queries = AllQueries(ref, req);
  Answers want = CollectAnswers(c.http(), queries);
  ASSERT_EQ(UnexpectedStatuses(want, queries), "");
  EXPECT_EQ(DiffAnswers(CollectAnswers(a.http(), queries), want), "");
  std::vector<MetricsCall> sample;
  for (const std::string& w : ref.WorkspacesByActivity()) {
    std::vector<MetricsCall> calls = AllCombinations(w, "");
    for (size_t i = 0; i < calls.size(); i += 29) sample.push_back(calls[i]);
  }
  EXPECT_EQ(CheckAll(a.http(), kAdminToken, ref, sample), 0);
  std::fprintf(stderr, "[replay_e2e] rebuild while serving done in %.1f s\n", Seconds(t0));
}

// ---------------------------------------------------------------------------------------------
// Snapshot replica.

TEST(ReplayE2E, SnapshotReplica) {
  const auto t0 = SteadyClock::now();
  Dataset data = GenerateDataset(Options(5004, 16000));
  const size_t head = 11000;

  Stack stack;
  ASSERT_TRUE(stack.StartBroker(kPartitions));
  ReferenceModel ref(Stack::kToday);
  RequestsReference req;
  for (const std::string& l : data.lines) ref.Add(l), req.Add(l);
  const std::string keys = WriteKeys(stack.dir(), ref.WorkspacesByActivity().front());
  Tallyd a(&stack.dir(), "tallyd-a");
  ASSERT_TRUE(a.Start(stack.bootstrap(), stack.dir().File("a"), "group-a", keys));
  ASSERT_TRUE(ProducePaced(stack, a,
                           std::vector<std::string>(data.lines.begin(), data.lines.begin() + head),
                           std::vector<std::string>(data.keys.begin(), data.keys.begin() + head)));

  const std::string snap = stack.dir().File("snap");
  CliRun snapshot =
      RunTally(stack.dir(), "snapshot",
               {"snapshot", "--tallyd", a.url(), "--token", kAdminToken, "--out", snap});
  ASSERT_EQ(snapshot.exit_code, 0) << snapshot.Describe();
  ASSERT_TRUE(std::filesystem::exists(snap + "/CURRENT")) << snapshot.Describe();
  // A second snapshot to the same path is refused (the checkpoint is never overwritten).
  CliRun again = RunTally(stack.dir(), "snapshot-again",
                          {"snapshot", "--tallyd", a.url(), "--token", kAdminToken, "--out", snap});
  EXPECT_NE(again.exit_code, 0) << again.Describe();

  // The replica starts from the snapshot while the rest of the stream arrives.
  Tallyd s(&stack.dir(), "tallyd-s");
  ASSERT_TRUE(s.Start(stack.bootstrap(), stack.dir().File("s"), "replica", keys,
                      {"--from-snapshot", snap}));
  ASSERT_TRUE(
      ProducePaced(stack, a, std::vector<std::string>(data.lines.begin() + head, data.lines.end()),
                   std::vector<std::string>(data.keys.begin() + head, data.keys.end()), 2500));
  ASSERT_TRUE(s.WaitForCatchUp(Millis(90000)));
  ASSERT_TRUE(a.WaitForCatchUp(Millis(60000)));

  // S continued from the snapshot's offsets: it consumed only the lines produced after it.
  std::string metrics = s.MetricsText();
  EXPECT_EQ(MetricSum(metrics, "tally_events_consumed_total"),
            static_cast<double>(data.lines.size() - head))
      << metrics.substr(0, 3000);

  const std::vector<ApiQuery> queries = AllQueries(ref, req);
  Answers want = CollectAnswers(a.http(), queries);
  ASSERT_EQ(UnexpectedStatuses(want, queries), "");
  EXPECT_EQ(DiffAnswers(CollectAnswers(s.http(), queries), want), "");
  std::vector<MetricsCall> calls = AllCombinations(ref.WorkspacesByActivity().front(), "");
  std::vector<MetricsCall> sample;
  for (size_t i = 0; i < calls.size(); i += 23) sample.push_back(calls[i]);
  EXPECT_EQ(CheckAll(s.http(), kAdminToken, ref, sample), 0);
  std::fprintf(stderr, "[replay_e2e] snapshot replica done in %.1f s (%zu queries)\n", Seconds(t0),
               queries.size());
}

// ---------------------------------------------------------------------------------------------
// Upgrades: a store written by an older data layout (before layout versions were stamped) is
// refused by tallyd with the way out, and the rebuild it names replaces it in place: the
// rebuild's switch must not mistake "older layout" for "a tallyd holds the store".

TEST(ReplayE2E, OlderLayoutIsRefusedThenRebuiltInPlace) {
  Dataset data = GenerateDataset(Options(5005, 3000));
  ReferenceModel ref(Stack::kToday);
  for (const std::string& l : data.lines) ref.Add(l);
  Stack stack;
  const std::string keys = WriteKeys(stack.dir(), ref.WorkspacesByActivity().front());
  const std::string zst = stack.dir().File("events.ndjson.zst");
  ASSERT_TRUE(WriteZstd(zst, data.lines));
  const std::string d = stack.dir().File("d");
  CliRun first =
      RunTally(stack.dir(), "replay-first", {"replay", "--mode", "rebuild", "--data-dir", d, zst});
  ASSERT_EQ(first.exit_code, 0) << first.Describe();
  {
    // What an older tally leaves: views and offsets, no layout stamp.
    auto st = store::Store::Open({.path = d + "/" + ReadCurrent(d)});
    ASSERT_TRUE(st.has_value()) << st.error().message;
    ASSERT_TRUE(store::testing::EraseSchemaVersion(**st).has_value());
  }

  Process old;
  ASSERT_TRUE(
      old.Start({TallydBinary(), "--data-dir", d, "--listen", "127.0.0.1:0", "--keys", keys},
                stack.dir().File("tallyd-old"))
          .has_value());
  Result<int> status = old.Wait(Millis(30000));
  ASSERT_TRUE(status.has_value()) << "tallyd kept running on a store of an older layout";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) != 0);
  const std::string err = ReadFileOrEmpty(stack.dir().File("tallyd-old.out")) +
                          ReadFileOrEmpty(stack.dir().File("tallyd-old.err"));
  EXPECT_NE(err.find("data layout version 1"), std::string::npos) << err;
  EXPECT_NE(err.find("tally replay --mode rebuild"), std::string::npos) << err;

  const std::string before = ReadCurrent(d);
  CliRun rebuild = RunTally(stack.dir(), "replay-upgrade",
                            {"replay", "--mode", "rebuild", "--data-dir", d, zst});
  ASSERT_EQ(rebuild.exit_code, 0) << rebuild.Describe();
  EXPECT_NE(rebuild.out.find("CURRENT now names"), std::string::npos) << rebuild.Describe();
  EXPECT_NE(ReadCurrent(d), before);

  Tallyd t(&stack.dir(), "tallyd-new");
  ASSERT_TRUE(t.Start("embedded", d, "group-new", keys));
  ASSERT_TRUE(t.WaitForCatchUp(Millis(60000)));
  std::vector<MetricsCall> calls = AllCombinations(ref.WorkspacesByActivity().front(), "");
  std::vector<MetricsCall> sample;
  for (size_t i = 0; i < calls.size(); i += 7) sample.push_back(calls[i]);
  EXPECT_EQ(CheckAll(t.http(), kAdminToken, ref, sample), 0);
}

// ---------------------------------------------------------------------------------------------
// Admin endpoints: auth and validation, with status and body.

TEST(ReplayE2E, AdminEndpointsAuthAndValidation) {
  Stack stack;
  ASSERT_TRUE(stack.StartBroker(kPartitions));
  const std::string keys = WriteKeys(stack.dir(), "ws-member");
  const std::string a_dir = stack.dir().File("a");
  Tallyd a(&stack.dir(), "tallyd-a");
  ASSERT_TRUE(a.Start(stack.bootstrap(), a_dir, "group-a", keys));
  const Headers admin = {{"Authorization", std::string("Bearer ") + kAdminToken}};
  const Headers member = {{"Authorization", std::string("Bearer ") + kMemberToken}};
  const Headers unknown = {{"Authorization", "Bearer nope"}};
  auto post = [&](const std::string& path, const Headers& h, const std::string& body) {
    Result<HttpResponse> r = a.http().Send("POST", path, h, body);
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    return r ? *r : HttpResponse{};
  };
  auto errors_of = [](const HttpResponse& r) {
    json j = json::parse(r.body, nullptr, false);
    return j.is_object() && j.contains("errors") ? j["errors"] : json();
  };
  std::filesystem::create_directories(stack.dir().File("snaps"));

  for (const char* path : {"/admin/v1/switch", "/admin/v1/snapshot"}) {
    SCOPED_TRACE(path);
    const std::string field = std::string(path) == "/admin/v1/switch" ? "db" : "path";
    const std::string good = field == "db" ? R"({"db":"db.rebuild-20260101T000000Z"})"
                                           : R"({"path":")" + stack.dir().File("snaps/x") + "\"}";
    EXPECT_EQ(post(path, {}, good).status, 401);
    EXPECT_EQ(post(path, unknown, good).status, 401);
    EXPECT_EQ(post(path, {{"api_key", "nope"}}, good).status, 401);
    HttpResponse forbidden = post(path, member, good);
    EXPECT_EQ(forbidden.status, 403) << forbidden.body;
    // Bodies that are not an object with a non-empty string field.
    for (const std::string& bad :
         std::vector<std::string>{"", "not json", "[1]", "{}", "{\"" + field + "\":5}",
                                  "{\"" + field + "\":\"\"}", "{\"" + field + "\":null}"}) {
      HttpResponse r = post(path, admin, bad);
      EXPECT_EQ(r.status, 422) << "body " << bad << ": " << r.body;
      json e = errors_of(r);
      EXPECT_TRUE(e.contains(field) || e.contains("body")) << "body " << bad << ": " << r.body;
    }
  }

  // Switch: names that are not a plain directory name, the live store, a missing store.
  for (const char* bad : {"../x", "/tmp/db", "a/b", ".", "..", "db"}) {
    HttpResponse r = post("/admin/v1/switch", admin, json{{"db", bad}}.dump());
    EXPECT_EQ(r.status, 422) << bad << ": " << r.body;
    EXPECT_TRUE(errors_of(r).contains("db")) << bad << ": " << r.body;
  }
  HttpResponse missing = post("/admin/v1/switch", admin, R"({"db":"db.rebuild-20260101T000000Z"})");
  EXPECT_EQ(missing.status, 404) << missing.body;
  EXPECT_EQ(ReadCurrent(a_dir), "");  // unchanged: absent CURRENT means "db"
  // A directory that holds no store (an empty one, e.g. a rebuild that never started) is not
  // switched to: the live views would be replaced by empty ones and deleted.
  std::filesystem::create_directories(a_dir + "/db.empty");
  HttpResponse empty = post("/admin/v1/switch", admin, R"({"db":"db.empty"})");
  EXPECT_NE(empty.status, 200) << empty.body;
  EXPECT_EQ(ReadCurrent(a_dir), "");
  EXPECT_TRUE(std::filesystem::exists(a_dir + "/db/CURRENT"));

  // Snapshot: a relative path, an existing path; then a good one.
  HttpResponse relative = post("/admin/v1/snapshot", admin, R"({"path":"snaps/rel"})");
  EXPECT_EQ(relative.status, 422) << relative.body;
  EXPECT_TRUE(errors_of(relative).contains("path")) << relative.body;
  HttpResponse exists =
      post("/admin/v1/snapshot", admin, json{{"path", stack.dir().File("snaps")}}.dump());
  EXPECT_EQ(exists.status, 422) << exists.body;
  HttpResponse ok =
      post("/admin/v1/snapshot", admin, json{{"path", stack.dir().File("snaps/ok")}}.dump());
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_TRUE(std::filesystem::exists(stack.dir().File("snaps/ok/CURRENT")));
  // A switch to a store that exists works (the snapshot copied under the data dir), and back is
  // refused only because the old one is gone.
  std::filesystem::copy(stack.dir().File("snaps/ok"), a_dir + "/db.copy",
                        std::filesystem::copy_options::recursive);
  HttpResponse switched = post("/admin/v1/switch", admin, R"({"db":"db.copy"})");
  EXPECT_EQ(switched.status, 200) << switched.body;
  EXPECT_EQ(json::parse(switched.body, nullptr, false).value("status", ""), "switched");
  EXPECT_EQ(ReadCurrent(a_dir), "db.copy");
  ASSERT_TRUE(a.WaitForCatchUp(Millis(30000)));
}

}  // namespace
}  // namespace tally::integration
