// Benchmark of a group of tallyd instances on one consumer group (tally broker --partitions 12,
// every instance with its own --advertise-url, --instance-id and data dir):
//
//   cluster_bench [--events 200000] [--requests 2000] [--gathered-requests N] [--runs 3]
//                 [--standby-replicas 0|1|2] [--keep]
//
// 1. Query latency, local vs forwarded. Three instances are started on a fresh broker, the
//    generated events (default mix, 20 workspaces, keyed by workspace id) are produced, paced on
//    the group's progress (the broker keeps each partition's newest 5 MiB only), and the group is
//    left to settle: every partition has a live owner serving it, and every owner has stored its
//    partitions up to their high watermarks. The owner of each workspace is found by sending one
//    request through every instance: the owner is the one whose
//    tally_cluster_forwarded_requests_total does not move (cross-checked against /readyz's
//    routing table and the partition the producer chose). Then each run sends --requests
//    requests of GET /api/v1/workspaces/metrics (agents, executions, count, daily, 30 days) to
//    the owner (local) and as many to a non-owner (forwarded: one hop over the forwarding
//    instance's keep-alive pool), in pairs whose order alternates, on one keep-alive connection
//    per instance. Reported: client-side p50/p90/p99 (send -> last byte) per kind, the
//    Server-Timing p50 (a forwarded answer's is the forwarding instance's, hop included), and
//    the p50 difference; medians of the per-run figures.
// 2. Request analytics gathered from several owners vs one instance. The organization of each
//    workspace is its events' data.organization_id; for every organization whose workspaces are
//    owned by two or more instances (owners as found in step 1), each run sends
//    --gathered-requests (default: --requests) requests of GET /v1/analytics/requests/
//    total-active-users and of .../agent-usage-per-user (startDate..endDate: the first and last
//    UTC day of the events) with `organization-id: <org>` through one instance, round-robin over
//    the instances: the receiving instance merges the shares of the organization's other owners
//    ("gathered"). The same requests go to the single instance of step 4 after it has settled
//    (it holds every partition). Reported per metric: client-side p50/p90/p99 of both, the p50
//    difference (gathered minus one instance, of the medians over the runs), and every answer's
//    status and body: each must be 200 and byte-identical to the single instance's first answer
//    to the same organization and metric (the first difference is printed).
//    With --standby-replicas, "settled" also means that every instance keeps caught-up
//    standbys of the partitions the group's ring gives it, and the pacing follows the owners
//    only (a standby ahead of its owner must not let the broker trim what the owner needs).
// 3. Failover. The instance owning the most partitions is killed (SIGKILL); every workspace is
//    then queried through both survivors, one round every 25 ms. Reported: seconds until the
//    group is settled again on the survivors, until every workspace of the killed instance has
//    answered 200 through the survivor that forwards it (and through its new owner), the
//    statuses seen meanwhile (the other workspaces' too), and whether the killed instance's
//    workspaces answer as before over all time (period=all): a survivor restores a partition
//    from the log, and this broker's log holds only each partition's newest 5 MiB. Reported
//    too: how many partitions the survivors took, and how many of those from their standbys.
// 4. CPU per event with one and with three instances: utime + stime of each tallyd
//    (/proc/<pid>/stat) from just before producing until the group is settled, summed over the
//    instances, per event. The three-instance figure is the ingest of step 1; the one-instance
//    figure comes from one instance (with --advertise-url: the same code path) on another fresh
//    broker. The instances' idle CPU (measured for 2 s before producing) is reported too.
//
// Every tallyd runs with --cache-ttl 0 and session.timeout.ms=6000, heartbeat.interval.ms=500.
#include <signal.h>
#include <simdjson.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "bench_util.h"
#include "common/calendar.h"
#include "common/sha256.h"
#include "http/client.h"
#include "http/testing/free_port.h"
#include "kafka/admin.h"

namespace tb = tally::bench;
using tally::ErrorCode;
using tally::Fail;
using tally::Result;
using tally::Status;

namespace {

constexpr int kPartitions = 12;
constexpr const char* kTopic = "usage-events";
constexpr const char* kGroup = "tally-cluster-bench";
constexpr int kWorkspaces = 20;
constexpr const char* kSessionTimeoutMs = "6000";
constexpr const char* kHeartbeatMs = "500";

double SecondsSince(tb::SteadyClock::time_point t) {
  return std::chrono::duration<double>(tb::SteadyClock::now() - t).count();
}

void Sleep(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// Output of a shell command with trailing newlines removed; "" when it cannot run.
std::string Command(const std::string& command) {
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return "";
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// "Model name: X; CPU(s): N; ..." from lscpu, or "" when lscpu is missing.
std::string LscpuSummary() {
  std::string text = Command("lscpu 2>/dev/null");
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    if (key != "Model name" && key != "CPU(s)" && key != "Thread(s) per core" &&
        key != "Core(s) per socket" && key != "Socket(s)") {
      continue;
    }
    size_t v = line.find_first_not_of(' ', colon + 1);
    if (!out.empty()) out += "; ";
    out += key + ": " + (v == std::string::npos ? "" : line.substr(v));
  }
  return out;
}

// `v` with two decimals.
std::string Fixed(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

// ---------------------------------------------------------------- HTTP

// One keep-alive connection to one instance, opened again when the server closed it.
class Conn {
 public:
  Conn(std::string host, uint16_t port) : host_(std::move(host)), port_(port) {}

  // GET `target`. When the kept connection fails, connects once more and sends the request
  // again, setting *reconnected (if given) so that a timed caller can drop the sample.
  Result<tally::http::HttpReply> Get(const std::string& target,
                                     const tally::http::StringPairs& headers = {},
                                     bool* reconnected = nullptr) {
    if (reconnected) *reconnected = false;
    if (client_) {
      auto r = client_->Send("GET", target, {}, headers);
      if (r) return r;
      client_.reset();
    }
    if (reconnected) *reconnected = true;
    auto c = tally::http::HttpClient::Connect(host_, port_, std::chrono::seconds(5));
    if (!c) return std::unexpected(c.error());
    client_.emplace(std::move(*c));
    auto r = client_->Send("GET", target, {}, headers);
    if (!r) client_.reset();
    return r;
  }

 private:
  std::string host_;
  uint16_t port_;
  std::optional<tally::http::HttpClient> client_;
};

// What an instance's GET /readyz says about the group and its own ingest.
struct Readyz {
  int status = 0;
  std::string body;
  std::map<int, std::string> owner;  // details.cluster.routing.partitions
  struct Member {
    std::string url;
    std::set<int> owned, serving, standby;
  };
  std::map<std::string, Member> members;  // details.cluster.routing.members, by instance id
  std::map<int, int64_t> next_offset;     // details.ingest.partitions
  std::map<int, int64_t> read_offset;
  std::map<int, std::string> role;  // "owned", "standby" or "idle"
};

// kUnavailable when the request fails, kInternal when the body is not JSON; missing parts of the
// document leave the maps empty.
Result<Readyz> ReadReadyz(Conn& conn) {
  auto r = conn.Get("/readyz");
  if (!r) return std::unexpected(r.error());
  Readyz out;
  out.status = r->status;
  out.body = r->body;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(r->body).get(doc)) {
    return Fail(ErrorCode::kInternal, "/readyz: not JSON: " + r->body.substr(0, 300));
  }
  simdjson::dom::object partitions;
  if (!doc.at_pointer("/details/cluster/routing/partitions").get(partitions)) {
    for (simdjson::dom::key_value_pair kv : partitions) {
      std::string_view id;
      if (kv.value.get(id)) continue;
      out.owner[std::atoi(std::string(kv.key).c_str())] = std::string(id);
    }
  }
  simdjson::dom::array members;
  if (!doc.at_pointer("/details/cluster/routing/members").get(members)) {
    for (simdjson::dom::element m : members) {
      std::string_view id, url;
      if (m["instance_id"].get(id)) continue;
      Readyz::Member& member = out.members[std::string(id)];
      if (!m["url"].get(url)) member.url = std::string(url);
      simdjson::dom::array list;
      if (!m["owned"].get(list)) {
        for (simdjson::dom::element p : list) {
          int64_t v;
          if (!p.get(v)) member.owned.insert(static_cast<int>(v));
        }
      }
      if (!m["serving"].get(list)) {
        for (simdjson::dom::element p : list) {
          int64_t v;
          if (!p.get(v)) member.serving.insert(static_cast<int>(v));
        }
      }
      if (!m["standby"].get(list)) {
        for (simdjson::dom::element p : list) {
          int64_t v;
          if (!p.get(v)) member.standby.insert(static_cast<int>(v));
        }
      }
    }
  }
  simdjson::dom::array ingest;
  if (!doc.at_pointer("/details/ingest/partitions").get(ingest)) {
    for (simdjson::dom::element p : ingest) {
      int64_t partition, next, read;
      if (p["partition"].get(partition) || p["next_offset"].get(next)) continue;
      out.next_offset[static_cast<int>(partition)] = next;
      out.read_offset[static_cast<int>(partition)] = p["read_offset"].get(read) ? next : read;
      std::string_view role;
      if (!p["role"].get(role)) out.role[static_cast<int>(partition)] = std::string(role);
    }
  }
  return out;
}

// An unlabelled sample of an instance's /metrics; kNotFound when absent.
Result<double> Metric(Conn& conn, std::string_view name) {
  auto r = conn.Get("/metrics");
  if (!r) return std::unexpected(r.error());
  if (r->status != 200) {
    return Fail(ErrorCode::kUnavailable, "/metrics: HTTP " + std::to_string(r->status));
  }
  return tb::PrometheusValue(r->body, name);
}

// ---------------------------------------------------------------- the group

struct Instance {
  std::string id;
  std::string url;  // advertised, http://127.0.0.1:PORT
  std::unique_ptr<tb::ChildProcess> process;
  std::unique_ptr<Conn> conn;
};

// A broker and the tallyd instances of one consumer group on it, under `dir`. The destructor
// stops the instances (SIGTERM, all at once), then the broker.
class Group {
 public:
  // `standby_replicas`: every instance's --standby-replicas.
  Group(std::string dir, std::string tallyd, std::string keys, int standby_replicas = 0)
      : dir_(std::move(dir)),
        tallyd_(std::move(tallyd)),
        keys_(std::move(keys)),
        standby_replicas_(standby_replicas) {}
  ~Group() {
    for (Instance& in : instances_) ::kill(in.process->pid(), SIGTERM);
    for (Instance& in : instances_) in.process->Stop();
    if (broker_) broker_->Stop();
  }
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  // `tally broker --partitions 12`; waits for its address.
  Status StartBroker(const std::string& cli) {
    const std::string addr_file = dir_ + "/broker.addr";
    auto broker = tb::ChildProcess::Spawn(
        {cli, "broker", "--partitions", std::to_string(kPartitions), "--addr-file", addr_file},
        dir_ + "/broker.log");
    if (!broker) return std::unexpected(broker.error());
    broker_ = std::move(*broker);
    auto addr = tb::WaitForBrokerAddress(addr_file, 30'000, broker_.get());
    if (!addr) return std::unexpected(addr.error());
    brokers_ = *addr;
    return tally::Ok();
  }

  // Spawns the instances and waits until each has written its port file (not until ready).
  Status Start(const std::vector<std::string>& ids) {
    std::vector<std::string> port_files;
    for (const std::string& id : ids) {
      const uint16_t port = tally::http::testing::FreePort();
      if (port == 0) return Fail(ErrorCode::kUnavailable, "no free port");
      const std::string listen = "127.0.0.1:" + std::to_string(port);
      Instance in;
      in.id = id;
      in.url = "http://" + listen;
      port_files.push_back(dir_ + "/" + id + ".port");
      std::vector<std::string> argv = {tallyd_,
                                       "--brokers",
                                       brokers_,
                                       "--topic",
                                       kTopic,
                                       "--group",
                                       kGroup,
                                       "--instance-id",
                                       id,
                                       "--data-dir",
                                       dir_ + "/data-" + id,
                                       "--listen",
                                       listen,
                                       "--advertise-url",
                                       in.url,
                                       "--port-file",
                                       port_files.back(),
                                       "--keys",
                                       keys_,
                                       "--cache-ttl",
                                       "0",
                                       "--server-timing",
                                       "--kafka-option",
                                       std::string("session.timeout.ms=") + kSessionTimeoutMs,
                                       "--kafka-option",
                                       std::string("heartbeat.interval.ms=") + kHeartbeatMs,
                                       "--standby-replicas",
                                       std::to_string(standby_replicas_)};
      auto process = tb::ChildProcess::Spawn(argv, dir_ + "/" + id + ".log");
      if (!process) return std::unexpected(process.error());
      in.process = std::move(*process);
      in.conn = std::make_unique<Conn>("127.0.0.1", port);
      instances_.push_back(std::move(in));
    }
    for (size_t i = 0; i < ids.size(); ++i) {
      Instance& in = instances_[instances_.size() - ids.size() + i];
      auto addr = tb::WaitForFile(port_files[i], 60'000, in.process.get());
      if (!addr) return std::unexpected(addr.error());
    }
    return tally::Ok();
  }

  // SIGKILL, then reaps it and forgets it.
  void Kill(const std::string& id) {
    for (auto it = instances_.begin(); it != instances_.end(); ++it) {
      if (it->id != id) continue;
      ::kill(it->process->pid(), SIGKILL);
      while (it->process->Running()) Sleep(1);
      instances_.erase(it);
      return;
    }
  }

  // (low, high) watermarks of every partition.
  Result<std::vector<std::pair<int64_t, int64_t>>> Watermarks() const {
    std::vector<std::pair<int64_t, int64_t>> out;
    for (int p = 0; p < kPartitions; ++p) {
      auto wm = tally::kafka::Watermarks(brokers_, kTopic, p, 5000);
      if (!wm) return std::unexpected(wm.error());
      out.push_back(*wm);
    }
    return out;
  }

  // Every live instance answers /readyz 200; as each of them sees the routing, every partition
  // has a live owner that lists it as serving; every owner's next offset of each partition it
  // owns equals `high` (the partitions' high watermarks). `why` (if given) says what is missing.
  bool Settled(const std::vector<int64_t>& high, std::string* why) {
    std::set<std::string> live;
    for (const Instance& in : instances_) live.insert(in.id);
    for (Instance& in : instances_) {
      auto r = ReadReadyz(*in.conn);
      if (!r) return Why(why, in.id + ": /readyz: " + r.error().message);
      if (r->status != 200) return Why(why, in.id + ": not ready: " + r->body.substr(0, 300));
      for (int p = 0; p < kPartitions; ++p) {
        auto owner = r->owner.find(p);
        if (owner == r->owner.end() || !live.contains(owner->second)) {
          return Why(why, in.id + " routes partition " + std::to_string(p) + " to " +
                              (owner == r->owner.end() ? "nobody" : owner->second));
        }
        if (!r->members[owner->second].serving.contains(p)) {
          return Why(why, in.id + " sees partition " + std::to_string(p) + " restoring on " +
                              owner->second);
        }
      }
      for (int p : r->members[in.id].standby) {
        auto next = r->next_offset.find(p);
        if (r->role[p] != "standby" || next == r->next_offset.end() ||
            (p < static_cast<int>(high.size()) && next->second != high[p])) {
          return Why(why, in.id + " standby of partition " + std::to_string(p) + " not caught up");
        }
      }
      for (int p : r->members[in.id].owned) {
        auto next = r->next_offset.find(p);
        const int64_t at = next == r->next_offset.end() ? 0 : next->second;
        if (p < static_cast<int>(high.size()) && at != high[p]) {
          return Why(why, in.id + " partition " + std::to_string(p) + " at " + std::to_string(at) +
                              " of " + std::to_string(high[p]));
        }
      }
    }
    return true;
  }

  // Settled() within `timeout_ms`, polled every 100 ms; the error carries the last reason and
  // the tails of the instances' logs.
  Status WaitSettled(const std::vector<int64_t>& high, int timeout_ms) {
    const auto t0 = tb::SteadyClock::now();
    std::string why;
    while (SecondsSince(t0) * 1000 < timeout_ms) {
      if (Settled(high, &why)) return tally::Ok();
      for (Instance& in : instances_) {
        if (!in.process->Running()) {
          return Fail(ErrorCode::kUnavailable,
                      in.id + " exited:\n" + tb::FileTail(in.process->log_path()));
        }
      }
      Sleep(100);
    }
    std::string message = "not settled after " + std::to_string(timeout_ms / 1000) + " s: " + why;
    for (Instance& in : instances_) {
      message += "\n--- " + in.id + ":\n" + tb::FileTail(in.process->log_path(), 1500);
    }
    return Fail(ErrorCode::kUnavailable, message);
  }

  // Pacing progress over the whole group: per partition, the largest read and stored offsets
  // any live instance reports.
  tb::ProgressFn Progress() {
    return [this](std::vector<int64_t>* read, std::vector<int64_t>* stored) -> Status {
      read->assign(kPartitions, 0);
      stored->assign(kPartitions, 0);
      for (Instance& in : instances_) {
        auto r = ReadReadyz(*in.conn);
        if (!r) return std::unexpected(r.error());
        // Owners only: pacing on a standby that runs ahead of its owner would let the broker
        // trim what the owner has not read yet.
        for (const auto& [p, n] : r->next_offset) {
          if (p >= 0 && p < kPartitions && r->role[p] != "standby") {
            (*stored)[p] = std::max((*stored)[p], n);
          }
        }
        for (const auto& [p, n] : r->read_offset) {
          if (p >= 0 && p < kPartitions && r->role[p] != "standby") {
            (*read)[p] = std::max((*read)[p], n);
          }
        }
      }
      return tally::Ok();
    };
  }

  // Sum of an unlabelled metric over the live instances (absent samples count 0).
  double MetricSum(std::string_view name) {
    double sum = 0;
    for (Instance& in : instances_) {
      auto v = Metric(*in.conn, name);
      if (v) sum += *v;
    }
    return sum;
  }

  std::vector<Instance>& instances() { return instances_; }
  Instance* Find(const std::string& id) {
    for (Instance& in : instances_) {
      if (in.id == id) return &in;
    }
    return nullptr;
  }
  const std::string& brokers() const { return brokers_; }

 private:
  static bool Why(std::string* why, std::string text) {
    if (why) *why = std::move(text);
    return false;
  }

  std::string dir_, tallyd_, keys_, brokers_;
  int standby_replicas_ = 0;
  std::unique_ptr<tb::ChildProcess> broker_;
  std::vector<Instance> instances_;
};

// ---------------------------------------------------------------- ingest and CPU

struct IngestResult {
  bool ok = false;
  std::string error;
  double idle_ms_per_s = 0;  // summed over the instances, before producing
  double cpu_s = 0;          // summed, from just before producing until settled
  double seconds = 0;        // first produce -> settled
  double us_per_event = 0;
  double idle_us_per_event = 0;  // idle_ms_per_s x seconds, per event
  double consumed = 0, applied = 0, trimmed = 0;
  int64_t polls = 0;
  tb::SteadyClock::time_point settled_at;
  std::vector<std::pair<int64_t, int64_t>> watermarks;
};

// With the group's instances started on its fresh broker: waits until the (empty) group is
// settled, measures 2 s of idle CPU, then produces every event paced on the group's progress and
// waits until the group is settled again, and reads the CPU the instances used since just before
// producing.
IngestResult Ingest(Group& group, const tb::EventSet& events) {
  IngestResult r;
  const std::vector<int64_t> zero(kPartitions, 0);
  if (auto st = group.WaitSettled(zero, 120'000); !st) {
    r.error = "empty group: " + st.error().message;
    return r;
  }
  std::vector<double> c0;
  for (Instance& in : group.instances()) c0.push_back(tb::ProcessCpuSeconds(in.process->pid()));
  const auto idle0 = tb::SteadyClock::now();
  Sleep(2000);
  std::vector<double> cpu0;
  for (Instance& in : group.instances()) cpu0.push_back(tb::ProcessCpuSeconds(in.process->pid()));
  const double idle_s = SecondsSince(idle0);
  for (size_t i = 0; i < cpu0.size(); ++i) r.idle_ms_per_s += (cpu0[i] - c0[i]) / idle_s * 1000;

  tb::PaceOptions pace;
  pace.topic = kTopic;
  pace.min_refresh_us = 20'000;  // /readyz of every instance at most 50 times a second
  const auto t0 = tb::SteadyClock::now();
  auto produced = tb::ProduceAndPace(events, group.brokers(), pace, group.Progress());
  if (!produced) {
    r.error = "producing: " + produced.error().message;
    return r;
  }
  r.polls = produced->progress_polls;
  auto wm = group.Watermarks();
  if (!wm) {
    r.error = "watermarks: " + wm.error().message;
    return r;
  }
  r.watermarks = *wm;
  std::vector<int64_t> high;
  for (const auto& [lo, hi] : *wm) high.push_back(hi);
  if (auto st = group.WaitSettled(high, 120'000); !st) {
    r.error = st.error().message;
    return r;
  }
  r.settled_at = tb::SteadyClock::now();
  r.seconds = SecondsSince(t0);
  for (size_t i = 0; i < group.instances().size(); ++i) {
    r.cpu_s += tb::ProcessCpuSeconds(group.instances()[i].process->pid()) - cpu0[i];
  }
  const double n = static_cast<double>(events.events.size());
  r.us_per_event = r.cpu_s / n * 1e6;
  r.idle_us_per_event = r.idle_ms_per_s / 1000 * r.seconds / n * 1e6;
  r.consumed = group.MetricSum("tally_events_consumed_total");
  r.applied = group.MetricSum("tally_events_applied_total");
  r.trimmed = group.MetricSum("tally_log_trimmed_total");
  r.ok = true;
  return r;
}

void PrintIngest(const char* what, const IngestResult& r, size_t events) {
  if (!r.ok) {
    std::printf("%s: FAILED: %s\n", what, r.error.c_str());
    return;
  }
  std::printf(
      "%s: %zu events stored and settled in %.1f s (%.0f events/s); tallyd CPU %.2f s = %.2f "
      "µs/event (idle %.1f ms/s before producing, %.2f µs/event of the window); consumed %.0f, "
      "applied %.0f, log trimmed %.0f times; %lld progress polls\n",
      what, events, r.seconds, static_cast<double>(events) / r.seconds, r.cpu_s, r.us_per_event,
      r.idle_ms_per_s, r.idle_us_per_event, r.consumed, r.applied, r.trimmed,
      static_cast<long long>(r.polls));
  std::fflush(stdout);
}

std::string StatusCounts(const std::map<int, int64_t>& counts) {
  std::string out;
  for (const auto& [status, n] : counts) {
    if (!out.empty()) out += ", ";
    out += (status == 0 ? std::string("no answer") : std::to_string(status)) + " x" +
           std::to_string(n);
  }
  return out.empty() ? "none" : out;
}

// ---------------------------------------------------------------- latency

std::string MetricsTarget(const std::string& ws) {
  return "/api/v1/workspaces/metrics?workspace_uuid=" + ws +
         "&entity=agents&metric=executions&aggregation=count&group_by=date&granularity=daily"
         "&period=30d";
}

// The body with the values of the fields that depend on when it was computed blanked.
std::string Normalized(std::string body) {
  for (const char* key : {"\"cached_at\":", "\"generated_at\":", "\"computed_at\":"}) {
    size_t at = body.find(key);
    while (at != std::string::npos) {
      size_t from = at + std::string_view(key).size();
      size_t to = body.find_first_of(",}", from);
      if (to == std::string::npos) break;
      body.replace(from, to - from, "null");
      at = body.find(key, from);
    }
  }
  return body;
}

struct Sample {
  double client_ms = 0;
  double server_ms = -1;
};

struct RunFigures {
  double local_p50 = 0, local_p90 = 0, local_p99 = 0;
  double fwd_p50 = 0, fwd_p90 = 0, fwd_p99 = 0;
  double local_server_p50 = 0, fwd_server_p50 = 0;
  double pair_diff_p50 = 0;  // median of (forwarded - local) over the pairs
};

RunFigures Figures(const std::vector<Sample>& local, const std::vector<Sample>& fwd,
                   const std::vector<double>& pair_diffs) {
  auto client = [](const std::vector<Sample>& s) {
    std::vector<double> v;
    for (const Sample& x : s) v.push_back(x.client_ms);
    return v;
  };
  auto server = [](const std::vector<Sample>& s) {
    std::vector<double> v;
    for (const Sample& x : s) {
      if (x.server_ms >= 0) v.push_back(x.server_ms);
    }
    return v;
  };
  RunFigures f;
  const auto l = client(local), w = client(fwd);
  f.local_p50 = tb::Percentile(l, 0.5);
  f.local_p90 = tb::Percentile(l, 0.9);
  f.local_p99 = tb::Percentile(l, 0.99);
  f.fwd_p50 = tb::Percentile(w, 0.5);
  f.fwd_p90 = tb::Percentile(w, 0.9);
  f.fwd_p99 = tb::Percentile(w, 0.99);
  f.local_server_p50 = tb::Percentile(server(local), 0.5);
  f.fwd_server_p50 = tb::Percentile(server(fwd), 0.5);
  f.pair_diff_p50 = tb::Median(pair_diffs);
  return f;
}

// Per workspace: the instance that answers it locally, the partition its events went to and
// the normalized answer.
struct Placement {
  std::string ws;
  int partition = -1;
  std::string owner;
  std::string body;
};

// Answers other than 200 seen by FindOwners right after the group settled.
struct EarlyAnswers {
  std::map<int, int64_t> statuses;
  std::string first_body;  // workspace, instance and body of the first one
  double last_s = -1;      // settled -> the last one
};

// Finds every workspace's owner by sending one request through each instance: the owner's
// tally_cluster_forwarded_requests_total does not move, every other instance's moves by one.
// Checks that every instance answers 200 (within 15 s of `settled_at`; the others are counted
// in *early) and the same (normalized) body.
Result<std::vector<Placement>> FindOwners(Group& group, const std::vector<std::string>& workspaces,
                                          const std::map<std::string, int>& partition_of,
                                          const tally::http::StringPairs& auth,
                                          tb::SteadyClock::time_point settled_at,
                                          EarlyAnswers* early) {
  std::vector<Placement> out;
  for (const std::string& ws : workspaces) {
    Placement pl;
    pl.ws = ws;
    auto partition = partition_of.find(ws);
    pl.partition = partition == partition_of.end() ? -1 : partition->second;
    std::vector<std::string> local;
    for (Instance& in : group.instances()) {
      // Right after settling, an instance may not know yet where a workspace's events went:
      // such answers are counted and the request is sent again (for up to 15 s).
      auto before = Metric(*in.conn, "tally_cluster_forwarded_requests_total");
      auto reply = in.conn->Get(MetricsTarget(ws), auth);
      while (reply && reply->status != 200 && SecondsSince(settled_at) < 15) {
        ++early->statuses[reply->status];
        if (early->first_body.empty()) {
          early->first_body = ws + " through " + in.id + ": " + reply->body.substr(0, 200);
        }
        early->last_s = SecondsSince(settled_at);
        Sleep(10);
        before = Metric(*in.conn, "tally_cluster_forwarded_requests_total");
        reply = in.conn->Get(MetricsTarget(ws), auth);
      }
      auto after = Metric(*in.conn, "tally_cluster_forwarded_requests_total");
      if (!reply) return std::unexpected(reply.error());
      if (reply->status != 200) {
        return Fail(ErrorCode::kInternal, ws + " through " + in.id + ": HTTP " +
                                              std::to_string(reply->status) + " " +
                                              reply->body.substr(0, 300) + " for 15 s");
      }
      // The counter is registered on first use: absent means 0.
      const double b = before ? *before : 0, a = after ? *after : 0;
      if (a == b) local.push_back(in.id);
      std::string body = Normalized(reply->body);
      if (pl.body.empty()) {
        pl.body = body;
      } else if (body != pl.body) {
        return Fail(ErrorCode::kInternal, ws + ": " + in.id + " answers differently:\n" +
                                              body.substr(0, 300) + "\nvs\n" +
                                              pl.body.substr(0, 300));
      }
    }
    if (local.size() != 1) {
      std::string ids;
      for (const std::string& id : local) ids += " " + id;
      return Fail(ErrorCode::kInternal,
                  ws + ": " + std::to_string(local.size()) + " instances answered locally:" + ids);
    }
    pl.owner = local.front();
    out.push_back(std::move(pl));
  }
  return out;
}

// ---------------------------------------------------------------- failover

struct FailoverResult {
  bool ok = false;
  std::string error;
  std::string victim;
  int victim_partitions = 0;
  std::vector<std::string> victim_workspaces;
  double settled_s = -1;    // kill -> the survivors settled (the last time it became true)
  double forwarded_s = -1;  // kill -> every victim workspace answered 200 through its forwarder
  double local_s = -1;      // kill -> ... through its new owner
  double victim_last_bad_s = -1;           // kill -> the last non-200 of a victim workspace
  std::map<int, int64_t> victim_statuses;  // probes of the victim's workspaces, by status
  std::map<int, int64_t> other_statuses;   // probes of the other workspaces
  double other_first_bad_s = -1, other_last_bad_s = -1;
  int64_t rounds = 0;
  // All-time answers (period=all) of the victim's workspaces that differ after the failover,
  // and the first such pair.
  int answers_changed = 0;
  std::string first_change;
  double trimmed_before = 0, trimmed_after = 0;
  std::vector<int> victim_trimmed_partitions;  // owned by the victim, log start > 0
  // Partitions the survivors gained, and of those the ones taken over from their standbys.
  double gained = 0, taken_from_standby = 0;
};

std::string AllTimeTarget(const std::string& ws) {
  return "/api/v1/workspaces/metrics?workspace_uuid=" + ws +
         "&entity=agents&metric=executions&aggregation=count&period=all";
}

// Kills (SIGKILL) the instance owning the most partitions (ties: the one owning more
// workspaces), then probes every workspace through both survivors, one round every 25 ms, until
// the group is settled again and the killed instance's workspaces have answered 200 through both
// survivors for a second (at most 90 s). `high`: the partitions' high watermarks (nothing is
// produced meanwhile).
FailoverResult Failover(Group& group, const std::vector<Placement>& placements,
                        const std::vector<std::pair<int64_t, int64_t>>& watermarks,
                        const tally::http::StringPairs& auth) {
  FailoverResult f;
  auto routing = ReadReadyz(*group.instances().front().conn);
  if (!routing) {
    f.error = routing.error().message;
    return f;
  }
  std::map<std::string, int> ws_count;
  for (const Placement& p : placements) ++ws_count[p.owner];
  for (Instance& in : group.instances()) {
    const int n = static_cast<int>(routing->members[in.id].owned.size());
    if (f.victim.empty() || n > f.victim_partitions ||
        (n == f.victim_partitions && ws_count[in.id] > ws_count[f.victim])) {
      f.victim = in.id;
      f.victim_partitions = n;
    }
  }
  for (int p : routing->members[f.victim].owned) {
    if (watermarks[p].first > 0) f.victim_trimmed_partitions.push_back(p);
  }
  std::vector<const Placement*> victim_ws;
  std::vector<std::string> all_time_before;
  for (const Placement& p : placements) {
    if (p.owner != f.victim) continue;
    victim_ws.push_back(&p);
    f.victim_workspaces.push_back(p.ws);
    Instance* owner = group.Find(p.owner);
    Result<tally::http::HttpReply> r = Fail(ErrorCode::kNotFound, "no instance " + p.owner);
    if (owner) r = owner->conn->Get(AllTimeTarget(p.ws), auth);
    all_time_before.push_back(r && r->status == 200 ? Normalized(r->body) : "");
  }
  std::vector<int64_t> high;
  for (const auto& [lo, hi] : watermarks) high.push_back(hi);
  f.trimmed_before = group.MetricSum("tally_log_trimmed_total");

  const auto t0 = tb::SteadyClock::now();
  group.Kill(f.victim);
  // The survivors' counters (the group takes nothing over before the session times out).
  const double gained_before = group.MetricSum("tally_cluster_partitions_gained_total");
  const double warm_before = group.MetricSum("tally_partitions_taken_from_standby_total");
  std::vector<Instance*> survivors;
  for (Instance& in : group.instances()) survivors.push_back(&in);
  // first_ok[ws][survivor]: seconds after the kill of the first 200 (of the victim's workspaces).
  std::vector<std::vector<double>> first_ok(victim_ws.size(),
                                            std::vector<double>(survivors.size(), -1));
  double settled_at = -1;
  auto last_settle_check = tb::SteadyClock::time_point{};
  while (SecondsSince(t0) < 90) {
    const auto round_start = tb::SteadyClock::now();
    ++f.rounds;
    size_t w = 0;
    for (const Placement& p : placements) {
      const bool victim = p.owner == f.victim;
      for (size_t s = 0; s < survivors.size(); ++s) {
        auto r = survivors[s]->conn->Get(MetricsTarget(p.ws), auth);
        const double at = SecondsSince(t0);
        const int status = r ? r->status : 0;
        ++(victim ? f.victim_statuses : f.other_statuses)[status];
        if (status == 200) {
          if (victim && first_ok[w][s] < 0) first_ok[w][s] = at;
        } else if (victim) {
          f.victim_last_bad_s = at;
        } else {
          if (f.other_first_bad_s < 0) f.other_first_bad_s = at;
          f.other_last_bad_s = at;
        }
      }
      if (victim) ++w;
    }
    if (tb::SteadyClock::now() - last_settle_check > std::chrono::milliseconds(100)) {
      last_settle_check = tb::SteadyClock::now();
      const bool settled = group.Settled(high, nullptr);
      if (settled && settled_at < 0) settled_at = SecondsSince(t0);
      if (!settled) settled_at = -1;
    }
    bool all_ok = true;
    for (const auto& row : first_ok) {
      for (double v : row) all_ok = all_ok && v >= 0;
    }
    if (settled_at >= 0 && all_ok &&
        SecondsSince(t0) - std::max({0.0, f.victim_last_bad_s, f.other_last_bad_s}) > 1.0) {
      break;
    }
    std::this_thread::sleep_until(round_start + std::chrono::milliseconds(25));
  }
  if (settled_at < 0) {
    std::string why;
    group.Settled(high, &why);
    f.error = "the survivors did not settle within 90 s: " + why;
    return f;
  }
  f.settled_s = settled_at;
  // Which survivor owns each victim workspace now: the other one forwards.
  auto after = ReadReadyz(*survivors.front()->conn);
  if (!after) {
    f.error = after.error().message;
    return f;
  }
  for (size_t w = 0; w < victim_ws.size(); ++w) {
    const std::string& owner = after->owner[victim_ws[w]->partition];
    for (size_t s = 0; s < survivors.size(); ++s) {
      double& slot = survivors[s]->id == owner ? f.local_s : f.forwarded_s;
      if (first_ok[w][s] < 0) {
        f.error = victim_ws[w]->ws + " never answered 200 through " + survivors[s]->id;
        return f;
      }
      slot = std::max(slot, first_ok[w][s]);
    }
    auto r = survivors.front()->conn->Get(AllTimeTarget(victim_ws[w]->ws), auth);
    const std::string now = r && r->status == 200 ? Normalized(r->body) : "";
    if (now != all_time_before[w]) {
      if (f.answers_changed++ == 0) {
        f.first_change = victim_ws[w]->ws + " before: " + all_time_before[w].substr(0, 160) +
                         " after: " + now.substr(0, 160);
      }
    }
  }
  f.trimmed_after = group.MetricSum("tally_log_trimmed_total");
  f.gained = group.MetricSum("tally_cluster_partitions_gained_total") - gained_before;
  f.taken_from_standby = group.MetricSum("tally_partitions_taken_from_standby_total") - warm_before;
  f.ok = true;
  return f;
}

// ---------------------------------------------------------------- request analytics, gathered

// The request-analytics metrics measured gathered and on one instance.
constexpr std::array<const char*, 2> kRequestMetrics = {"total-active-users",
                                                        "agent-usage-per-user"};

// The string value that follows `pattern` (`"name":"`) at its first occurrence in a generated
// event line, up to the next quote; empty when absent. Generated ids and times hold no quote or
// backslash, and the top-level "time" comes before "data".
std::string_view FieldValue(std::string_view json, std::string_view pattern) {
  size_t at = json.find(pattern);
  if (at == std::string_view::npos) return {};
  at += pattern.size();
  const size_t end = json.find('"', at);
  if (end == std::string_view::npos) return {};
  return json.substr(at, end - at);
}

std::string RequestsTarget(const char* metric, const std::string& from, const std::string& to) {
  return std::string("/v1/analytics/requests/") + metric + "?startDate=" + from + "&endDate=" + to;
}

struct Percentiles {
  double p50 = 0, p90 = 0, p99 = 0;
};

// All 0 for no samples.
Percentiles PercentilesOf(const std::vector<double>& ms) {
  return {tb::Percentile(ms, 0.5), tb::Percentile(ms, 0.9), tb::Percentile(ms, 0.99)};
}

// One distinct body among a phase's 200 answers to one (organization, metric).
struct BodyCount {
  int64_t n = 0;    // answers with this body
  int64_t seq = 0;  // the first one's position among the phase's timed requests
  std::string via;  // the instance that sent the first one
};

// (organization, index in kRequestMetrics).
using RequestKey = std::pair<std::string, size_t>;

// The timed request-analytics requests of one phase: the three-instance group (gathered) or the
// single instance.
struct RequestsPhase {
  std::vector<std::array<Percentiles, kRequestMetrics.size()>> runs;  // client ms, per run
  std::map<RequestKey, std::string> first;                         // body of the first 200 answer
  std::map<RequestKey, std::map<std::string, BodyCount>> answers;  // every 200 answer, by body
  int64_t sent = 0;
  int64_t errors = 0;   // failed requests and answers other than 200 (not timed)
  int64_t dropped = 0;  // sent again on a new connection (body kept, not timed)
  std::string first_error;
  std::map<int, int64_t> warmup_statuses;  // warm-up answers other than 200, sent again
};

// Runs `runs` times: first, untimed, every metric of every organization once through every
// instance of `group` (an answer other than 200 is counted in warmup_statuses and the request
// sent again every 10 ms while less than 15 s have passed since the call began); then `requests`
// rounds, round i sending every metric (kRequestMetrics) of every organization in `orgs`
// (GET RequestsTarget(metric, from, to) with `auth` and organization-id: <org>) through
// instance i mod (number of instances), on its keep-alive connection, timed from send to last
// byte. Fills *out (see RequestsPhase) and prints one line per run, starting with `what`.
void MeasureRequests(Group& group, const std::vector<std::string>& orgs, const std::string& from,
                     const std::string& to, int requests, int runs,
                     const tally::http::StringPairs& auth, const char* what, RequestsPhase* out) {
  std::vector<tally::http::StringPairs> headers;
  for (const std::string& org : orgs) {
    headers.push_back(auth);
    headers.back().emplace_back("organization-id", org);
  }
  std::vector<std::string> targets;
  for (const char* metric : kRequestMetrics) targets.push_back(RequestsTarget(metric, from, to));
  std::vector<Instance*> via;
  for (Instance& in : group.instances()) via.push_back(&in);
  if (via.empty() || orgs.empty()) return;
  const auto t0 = tb::SteadyClock::now();
  int64_t seq = 0;
  for (int run = 0; run < runs; ++run) {
    for (Instance* in : via) {
      for (size_t o = 0; o < orgs.size(); ++o) {
        for (const std::string& target : targets) {
          auto reply = in->conn->Get(target, headers[o]);
          while ((!reply || reply->status != 200) && SecondsSince(t0) < 15) {
            ++out->warmup_statuses[reply ? reply->status : 0];
            Sleep(10);
            reply = in->conn->Get(target, headers[o]);
          }
        }
      }
    }
    std::array<std::vector<double>, kRequestMetrics.size()> ms;
    const int64_t sent0 = out->sent;
    const auto r0 = tb::SteadyClock::now();
    for (int i = 0; i < requests; ++i) {
      Instance* in = via[static_cast<size_t>(i) % via.size()];
      for (size_t o = 0; o < orgs.size(); ++o) {
        for (size_t m = 0; m < targets.size(); ++m) {
          bool reconnected = false;
          const auto t = tb::SteadyClock::now();
          auto reply = in->conn->Get(targets[m], headers[o], &reconnected);
          const double elapsed = SecondsSince(t) * 1000;
          ++out->sent;
          const int64_t n = seq++;
          if (!reply || reply->status != 200) {
            if (out->errors++ == 0) {
              out->first_error = orgs[o] + " " + kRequestMetrics[m] + " through " + in->id + ": " +
                                 (reply ? "HTTP " + std::to_string(reply->status) + " " +
                                              reply->body.substr(0, 300)
                                        : reply.error().message);
            }
            continue;
          }
          const RequestKey key(orgs[o], m);
          out->first.try_emplace(key, reply->body);
          BodyCount& count = out->answers[key][reply->body];
          if (count.n++ == 0) {
            count.seq = n;
            count.via = in->id;
          }
          if (reconnected) {
            ++out->dropped;
            continue;
          }
          ms[m].push_back(elapsed);
        }
      }
    }
    std::array<Percentiles, kRequestMetrics.size()> p;
    std::string line;
    for (size_t m = 0; m < ms.size(); ++m) {
      p[m] = PercentilesOf(ms[m]);
      char buf[200];
      std::snprintf(buf, sizeof buf, "; %s ms p50 %.3f p90 %.3f p99 %.3f (%zu timed)",
                    kRequestMetrics[m], p[m].p50, p[m].p90, p[m].p99, ms[m].size());
      line += buf;
    }
    out->runs.push_back(p);
    std::printf("%s run %d: %lld requests in %.1f s%s; load %s\n", what, run + 1,
                static_cast<long long>(out->sent - sent0), SecondsSince(r0), line.c_str(),
                tb::LoadAverage().c_str());
    std::fflush(stdout);
  }
}

// Where `a` and `b` first differ: the byte offset, both sizes, and up to 80 bytes of each from
// 40 bytes before it.
std::string FirstDifference(const std::string& a, const std::string& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  const size_t from = i < 40 ? 0 : i - 40;  // <= both sizes: substr cannot throw
  return "byte " + std::to_string(i) + " (sizes " + std::to_string(a.size()) + " and " +
         std::to_string(b.size()) + "): ..." + a.substr(from, 80) + "... vs ..." +
         b.substr(from, 80) + "...";
}

// The 200 answers of the gathered phase ([0]) and of the single instance ([1]) checked against
// the single instance's first answer to the same (organization, metric); answers to a request
// the single instance never answered with 200 are not compared.
struct Comparison {
  std::array<int64_t, 2> compared = {0, 0};
  std::array<int64_t, 2> mismatches = {0, 0};  // bodies not byte-identical
  std::string first;  // the first mismatch of the gathered phase, else of the single instance
};

Comparison CompareAnswers(const RequestsPhase& gathered, const RequestsPhase& one) {
  Comparison c;
  const std::array<const RequestsPhase*, 2> phases = {&gathered, &one};
  for (size_t k = 0; k < phases.size(); ++k) {
    int64_t first_seq = -1;
    std::string first;
    for (const auto& [key, bodies] : phases[k]->answers) {
      auto ref = one.first.find(key);
      if (ref == one.first.end()) continue;
      for (const auto& [body, count] : bodies) {
        c.compared[k] += count.n;
        if (body == ref->second) continue;
        c.mismatches[k] += count.n;
        if (first_seq < 0 || count.seq < first_seq) {
          first_seq = count.seq;
          first = std::string(k == 0 ? "gathered" : "one-instance") + " answer to " + key.first +
                  " " + kRequestMetrics[key.second] + " through " + count.via + " (" +
                  std::to_string(count.n) + " like it) differs from the one instance's first at " +
                  FirstDifference(body, ref->second);
        }
      }
    }
    if (c.first.empty()) c.first = std::move(first);
  }
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Benchmark of a group of tallyd instances on one consumer group (tally broker, 12 "
      "partitions, 3 instances): query latency answered locally vs forwarded, request analytics "
      "gathered from several owners vs one instance, failover time after SIGKILL, and CPU per "
      "ingested event with one and with three instances."};
  int64_t events_n = 25'000;
  int requests = 2000, runs = 3, gathered_requests = 0, standby_replicas = 0;
  bool keep = false;
  std::string tallyd_path = TALLYD_PATH, cli_path = TALLY_CLI_PATH;
  app.add_option("--events", events_n,
                 "Generated events (default mix, 20 workspaces, keyed by workspace id) produced "
                 "to each fresh broker: the three-instance group's and the single instance's")
      ->check(CLI::Range(int64_t{1000}, int64_t{100'000'000}))
      ->capture_default_str();
  app.add_option("--requests", requests,
                 "Requests per kind (local, forwarded) and run, sent in pairs that alternate "
                 "which kind goes first, round-robin over the workspaces")
      ->check(CLI::Range(10, 10'000'000))
      ->capture_default_str();
  CLI::Option* gathered_option =
      app.add_option("--gathered-requests", gathered_requests,
                     "Request-analytics requests per metric (total-active-users, "
                     "agent-usage-per-user), organization and run, gathered through the three "
                     "instances round-robin and sent as many to the single instance (default: "
                     "the --requests value)")
          ->check(CLI::Range(1, 10'000'000));
  app.add_option("--runs", runs,
                 "Latency runs; the table gives the medians of the per-run percentiles")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--standby-replicas", standby_replicas,
                 "--standby-replicas of the three instances (the failover takes over from warm "
                 "copies with 1 or more; with 2 every takeover is warm)")
      ->check(CLI::Range(0, 2))
      ->capture_default_str();
  app.add_flag("--keep", keep, "Keep the temporary directory (data dirs, tallyd and broker logs)");
  app.add_option("--tallyd", tallyd_path, "tallyd binary to measure")->capture_default_str();
  app.add_option("--tally", cli_path, "tally CLI binary (for `tally broker`)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (gathered_option->count() == 0) gathered_requests = requests;

  const auto wall0 = tb::SteadyClock::now();
  std::printf("# cluster_bench\n\n");
  std::printf("machine: %s\n", tb::MachineSummary().c_str());
  if (std::string l = LscpuSummary(); !l.empty()) std::printf("lscpu: %s\n", l.c_str());
  {
    std::string commit = Command(std::string("git -C '") + TALLY_SOURCE_DIR +
                                 "' rev-parse --short HEAD 2>/dev/null");
    std::string changed = Command(std::string("git -C '") + TALLY_SOURCE_DIR +
                                  "' diff --name-only HEAD 2>/dev/null | tr '\\n' ' '");
    std::printf("commit: %s%s%s\n", commit.empty() ? "unknown" : commit.c_str(),
                changed.empty() ? "" : " + local changes in: ", changed.c_str());
  }
  std::printf("tallyd: %s\nload average before: %s\n", tallyd_path.c_str(),
              tb::LoadAverage().c_str());
  std::printf(
      "group: tally broker --partitions %d, instances with --cache-ttl 0, session.timeout.ms=%s, "
      "heartbeat.interval.ms=%s, --standby-replicas %d (the group of three)\n",
      kPartitions, kSessionTimeoutMs, kHeartbeatMs, standby_replicas);
  std::fflush(stdout);

  // ---------------------------------------------------------------- events
  tally::gen::GenOptions gen;
  gen.events = events_n;
  gen.workspaces = kWorkspaces;
  const auto g0 = tb::SteadyClock::now();
  tb::EventSet events = tb::GenerateEvents(gen, kPartitions);
  std::map<std::string, int> partition_of;
  std::map<std::string, int64_t> events_of;
  std::map<std::string, std::string> org_of;  // workspace -> its events' data.organization_id
  // The first and last UTC day of the events.
  tally::DayNumber first_day = std::numeric_limits<tally::DayNumber>::max();
  tally::DayNumber last_day = std::numeric_limits<tally::DayNumber>::min();
  std::vector<uint64_t> partition_bytes(kPartitions, 0);
  for (const auto& e : events.events) {
    partition_bytes[e.partition] += e.value_len;
    const std::string key(events.key(e));
    if (key.empty()) continue;
    partition_of[key] = e.partition;
    ++events_of[key];
    const std::string_view value = events.value(e);
    if (std::string_view org = FieldValue(value, "\"organization_id\":\""); !org.empty()) {
      org_of.try_emplace(key, org);
    }
    if (auto ms = tally::ParseRfc3339Millis(FieldValue(value, "\"time\":\""))) {
      const tally::DayNumber day = tally::BucketDay(*ms, key);
      first_day = std::min(first_day, day);
      last_day = std::max(last_day, day);
    }
  }
  // The request-analytics range: every day of the events (at most the endpoints' 366 days);
  // empty when no event time parsed.
  std::string from_day, to_day;
  if (first_day <= last_day) {
    from_day = tally::FormatDay(std::max(first_day, last_day - 365));
    to_day = tally::FormatDay(last_day);
  }
  std::vector<std::string> workspaces;
  for (const auto& [ws, n] : events_of) workspaces.push_back(ws);
  std::sort(workspaces.begin(), workspaces.end(), [&](const std::string& a, const std::string& b) {
    return events_of[a] != events_of[b] ? events_of[a] > events_of[b] : a < b;
  });
  std::printf(
      "events: %zu (%.1f MB of JSON, %.0f B/event) over %zu workspaces, generated in %.1f s; MB "
      "per partition:",
      events.events.size(), events.value_bytes / 1e6,
      static_cast<double>(events.value_bytes) / std::max<size_t>(1, events.events.size()),
      workspaces.size(), SecondsSince(g0));
  for (uint64_t b : partition_bytes) std::printf(" %.1f", b / 1e6);
  std::printf(" (the broker keeps the newest 5 MiB of each); request analytics over %s..%s\n\n",
              from_day.c_str(), to_day.c_str());
  std::fflush(stdout);

  tb::TempDir tmp("tally-cluster-bench-");
  if (tmp.path().empty()) {
    std::fprintf(stderr, "cannot create a temporary directory\n");
    return 1;
  }
  if (keep) tmp.keep();
  const std::string keys = tmp.path() + "/keys.toml";
  {
    std::ofstream out(keys);
    out << "[[keys]]\nname = \"bench-admin\"\nsha256 = \"" << tally::Sha256Hex(tb::kBenchToken)
        << "\"\nuser_id = \"bench\"\nadmin = true\n";
    if (!out) {
      std::fprintf(stderr, "cannot write %s\n", keys.c_str());
      return 1;
    }
  }
  const tally::http::StringPairs auth = {
      {"Authorization", std::string("Bearer ") + tb::kBenchToken}};
  bool failed = false;

  // ---------------------------------------------------------------- three instances
  std::vector<RunFigures> figures;
  int64_t dropped = 0, errors = 0;
  FailoverResult failover;
  IngestResult three;
  int routing_mismatches = 0;
  std::map<std::string, int> owned_by;
  std::vector<std::string> spread_orgs;  // organizations with workspaces on 2+ owners
  size_t org_count = 0;
  RequestsPhase gathered, single;
  {
    const std::string dir = tmp.path() + "/three";
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    Group group(dir, tallyd_path, keys, standby_replicas);
    const std::vector<std::string> ids = {"node-a", "node-b", "node-c"};
    if (auto st = group.StartBroker(cli_path); !st) {
      std::fprintf(stderr, "broker: %s\n", st.error().message.c_str());
      return 1;
    }
    if (auto st = group.Start(ids); !st) {
      std::fprintf(stderr, "tallyd: %s\n", st.error().message.c_str());
      return 1;
    }
    three = Ingest(group, events);
    PrintIngest("three instances", three, events.events.size());
    if (!three.ok) return 1;

    auto routing = ReadReadyz(*group.instances().front().conn);
    if (!routing) {
      std::fprintf(stderr, "/readyz: %s\n", routing.error().message.c_str());
      return 1;
    }
    std::printf("partitions owned:");
    for (const auto& [id, m] : routing->members) {
      std::printf(" %s [", id.c_str());
      bool first = true;
      for (int p : m.owned) {
        std::printf(first ? "%d" : ",%d", p);
        first = false;
      }
      std::printf("]");
    }
    std::printf("\n");

    EarlyAnswers early;
    auto placements = FindOwners(group, workspaces, partition_of, auth, three.settled_at, &early);
    if (!early.statuses.empty()) {
      std::printf(
          "right after settling: answers other than 200 for %s, the last %.3f s after settling; "
          "the first: %s\n",
          StatusCounts(early.statuses).c_str(), early.last_s, early.first_body.c_str());
    }
    if (!placements) {
      std::fprintf(stderr, "finding the owners: %s\n", placements.error().message.c_str());
      return 1;
    }
    for (const Placement& p : *placements) {
      ++owned_by[p.owner];
      if (routing->owner[p.partition] != p.owner) ++routing_mismatches;
    }
    std::printf("workspaces owned (by the forwarded-requests counter):");
    for (const auto& [id, n] : owned_by) std::printf(" %s %d", id.c_str(), n);
    std::printf("; disagreeing with /readyz routing of the produced partition: %d\n",
                routing_mismatches);
    std::fflush(stdout);

    // Latency runs: request i goes to workspace i mod W, forwarded through its non-owners in
    // turn; even pairs send the local request first, odd pairs the forwarded one.
    std::map<std::string, Instance*> by_id;
    for (Instance& in : group.instances()) by_id[in.id] = &in;
    for (int run = 0; run < runs; ++run) {
      // Warm-up: every workspace through every instance (fresh connections, warm caches).
      for (const Placement& p : *placements) {
        for (Instance& in : group.instances()) in.conn->Get(MetricsTarget(p.ws), auth);
      }
      std::vector<Sample> local, fwd;
      std::vector<double> diffs;
      const auto r0 = tb::SteadyClock::now();
      for (int i = 0; i < requests; ++i) {
        const Placement& p = (*placements)[i % placements->size()];
        std::vector<Instance*> others;
        for (Instance& in : group.instances()) {
          if (in.id != p.owner) others.push_back(&in);
        }
        Instance* via = others[(i / placements->size()) % others.size()];
        const std::string target = MetricsTarget(p.ws);
        Sample s[2];
        bool ok = true;
        for (int k = 0; k < 2; ++k) {
          const bool is_local = (k == 0) == (i % 2 == 0);
          Conn& conn = is_local ? *by_id[p.owner]->conn : *via->conn;
          bool reconnected = false;
          const auto t = tb::SteadyClock::now();
          auto reply = conn.Get(target, auth, &reconnected);
          const double ms = SecondsSince(t) * 1000;
          if (!reply || reply->status != 200) {
            if (++errors <= 5) {
              std::fprintf(stderr, "%s %s: %s\n", is_local ? "local" : "forwarded", p.ws.c_str(),
                           reply ? (std::to_string(reply->status) + " " + reply->body).c_str()
                                 : reply.error().message.c_str());
            }
            ok = false;
            continue;
          }
          if (reconnected) {
            ++dropped;
            ok = false;
            continue;
          }
          s[is_local ? 0 : 1] = {ms, tb::ParseServerTiming(reply->Header("Server-Timing"))};
        }
        if (!ok) continue;
        local.push_back(s[0]);
        fwd.push_back(s[1]);
        diffs.push_back(s[1].client_ms - s[0].client_ms);
      }
      RunFigures f = Figures(local, fwd, diffs);
      figures.push_back(f);
      std::printf(
          "run %d: %zu pairs in %.1f s; client ms local p50 %.3f p90 %.3f p99 %.3f, forwarded "
          "p50 %.3f p90 %.3f p99 %.3f; p50 difference %.3f (median paired difference %.3f); "
          "load %s\n",
          run + 1, local.size(), SecondsSince(r0), f.local_p50, f.local_p90, f.local_p99, f.fwd_p50,
          f.fwd_p90, f.fwd_p99, f.fwd_p50 - f.local_p50, f.pair_diff_p50,
          tb::LoadAverage().c_str());
      std::fflush(stdout);
    }

    // Request analytics of the organizations whose workspaces have two or more owners, gathered
    // (before the failover: a survivor restores only what the broker kept).
    std::map<std::string, std::map<std::string, int>> owners_of_org;  // org -> owner -> workspaces
    for (const Placement& p : *placements) {
      auto org = org_of.find(p.ws);
      if (org != org_of.end()) ++owners_of_org[org->second][p.owner];
    }
    org_count = owners_of_org.size();
    std::printf("organizations (workspaces per owner):");
    for (const auto& [org, owners] : owners_of_org) {
      std::printf(" %s [", org.c_str());
      bool first = true;
      for (const auto& [id, n] : owners) {
        std::printf(first ? "%s %d" : ", %s %d", id.c_str(), n);
        first = false;
      }
      std::printf("]");
      if (owners.size() >= 2) spread_orgs.push_back(org);
    }
    std::printf("; over two or more instances: %zu\n", spread_orgs.size());
    std::fflush(stdout);
    if (from_day.empty()) {
      std::printf("request analytics: not measured (no event time parsed)\n");
      spread_orgs.clear();
    }
    MeasureRequests(group, spread_orgs, from_day, to_day, gathered_requests, runs, auth, "gathered",
                    &gathered);

    failover = Failover(group, *placements, three.watermarks, auth);
    if (!failover.ok) {
      std::printf("failover: FAILED: %s\n", failover.error.c_str());
      failed = true;
    } else {
      std::string ws_list;
      for (const std::string& ws : failover.victim_workspaces) ws_list += " " + ws.substr(0, 8);
      std::printf(
          "failover: killed %s (%d partitions, %zu workspaces:%s); settled again after %.2f s; "
          "its workspaces answered 200 through the forwarding survivor after %.2f s, through "
          "their new owner after %.2f s, last non-200 at %.2f s; %lld probe rounds; answers for "
          "its workspaces: %s; for the other workspaces: %s (non-200 from %.2f s to %.2f s); "
          "all-time answers changed: %d of %zu; log trimmed %.0f -> %.0f times (partitions of "
          "the killed instance whose log start is past 0: %zu); partitions the survivors took: "
          "%.0f, from their standbys: %.0f\n",
          failover.victim.c_str(), failover.victim_partitions, failover.victim_workspaces.size(),
          ws_list.c_str(), failover.settled_s, failover.forwarded_s, failover.local_s,
          failover.victim_last_bad_s, static_cast<long long>(failover.rounds),
          StatusCounts(failover.victim_statuses).c_str(),
          StatusCounts(failover.other_statuses).c_str(), failover.other_first_bad_s,
          failover.other_last_bad_s, failover.answers_changed, failover.victim_workspaces.size(),
          failover.trimmed_before, failover.trimmed_after,
          failover.victim_trimmed_partitions.size(), failover.gained, failover.taken_from_standby);
      if (failover.answers_changed > 0) {
        std::printf("  first changed answer: %s\n", failover.first_change.c_str());
      }
    }
    std::fflush(stdout);
  }

  // ---------------------------------------------------------------- one instance
  IngestResult one;
  {
    const std::string dir = tmp.path() + "/one";
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    Group group(dir, tallyd_path, keys);
    if (auto st = group.StartBroker(cli_path); !st) {
      std::fprintf(stderr, "broker: %s\n", st.error().message.c_str());
      return 1;
    }
    if (auto st = group.Start({"node-a"}); !st) {
      std::fprintf(stderr, "tallyd: %s\n", st.error().message.c_str());
      return 1;
    }
    one = Ingest(group, events);
    PrintIngest("one instance", one, events.events.size());
    if (!one.ok) failed = true;
    // The gathered requests again, all to the one instance (after its CPU was read).
    if (one.ok) {
      MeasureRequests(group, spread_orgs, from_day, to_day, gathered_requests, runs, auth,
                      "one instance", &single);
    }
  }

  // ---------------------------------------------------------------- report
  auto med = [&](double RunFigures::*field) {
    std::vector<double> v;
    for (const RunFigures& f : figures) v.push_back(f.*field);
    return tb::Median(v);
  };
  std::vector<double> p50_diffs;
  for (const RunFigures& f : figures) p50_diffs.push_back(f.fwd_p50 - f.local_p50);
  const double p50_diff = tb::Median(p50_diffs);
  // Request analytics: the median over a phase's runs of one per-run percentile of metric m.
  auto req_med = [](const RequestsPhase& phase, size_t m, double Percentiles::*field) {
    std::vector<double> v;
    for (const auto& run : phase.runs) v.push_back(run[m].*field);
    return tb::Median(v);
  };
  const Comparison comparison = CompareAnswers(gathered, single);
  if (!spread_orgs.empty()) {
    auto summary = [](const char* what, const RequestsPhase& phase) {
      std::printf(
          "request analytics, %s: %lld requests, failed %lld, dropped (reconnected) %lld; "
          "warm-up answers other than 200 (sent again): %s\n",
          what, static_cast<long long>(phase.sent), static_cast<long long>(phase.errors),
          static_cast<long long>(phase.dropped), StatusCounts(phase.warmup_statuses).c_str());
      if (phase.errors > 0) std::printf("  first failure: %s\n", phase.first_error.c_str());
    };
    summary("gathered", gathered);
    if (one.ok) summary("one instance", single);
    if (one.ok) {
      std::printf(
          "request analytics: answers byte-identical to the one instance's first answer: "
          "gathered %lld of %lld, one instance %lld of %lld\n",
          static_cast<long long>(comparison.compared[0] - comparison.mismatches[0]),
          static_cast<long long>(comparison.compared[0]),
          static_cast<long long>(comparison.compared[1] - comparison.mismatches[1]),
          static_cast<long long>(comparison.compared[1]));
      if (!comparison.first.empty()) {
        std::printf("  first mismatch: %s\n", comparison.first.c_str());
      }
    }
    if (gathered.errors > 0 || single.errors > 0 || comparison.mismatches[0] > 0 ||
        comparison.mismatches[1] > 0) {
      failed = true;
    }
  }
  std::printf(
      "\nMedians of %d runs, %d requests per kind and run; failed requests %lld, dropped "
      "(reconnected) %lld.\n\n",
      runs, requests, static_cast<long long>(errors), static_cast<long long>(dropped));
  std::printf("| figure | value |\n|---|---|\n");
  std::printf("| local query p50 / p90 / p99 (ms, client) | %.3f / %.3f / %.3f |\n",
              med(&RunFigures::local_p50), med(&RunFigures::local_p90),
              med(&RunFigures::local_p99));
  std::printf("| forwarded query p50 / p90 / p99 (ms, client) | %.3f / %.3f / %.3f |\n",
              med(&RunFigures::fwd_p50), med(&RunFigures::fwd_p90), med(&RunFigures::fwd_p99));
  std::printf(
      "| forwarding cost at p50 (ms; goal < 0.3) | %.3f (%s); median paired "
      "difference %.3f |\n",
      p50_diff, p50_diff < 0.3 ? "met" : "NOT met", med(&RunFigures::pair_diff_p50));
  std::printf("| Server-Timing p50 local / forwarding instance (ms) | %.3f / %.3f |\n",
              med(&RunFigures::local_server_p50), med(&RunFigures::fwd_server_p50));
  if (spread_orgs.empty()) {
    std::printf(
        "| request analytics gathered vs one instance | not measured: no organization has "
        "workspaces owned by two instances |\n");
  } else {
    std::string orgs;
    for (const std::string& org : spread_orgs) orgs += (orgs.empty() ? "" : ", ") + org;
    std::printf(
        "| request analytics: organizations with workspaces on two or more instances | %zu of "
        "%zu (%s); %d requests per metric, organization and run; %s..%s |\n",
        spread_orgs.size(), org_count, orgs.c_str(), gathered_requests, from_day.c_str(),
        to_day.c_str());
    for (size_t m = 0; m < kRequestMetrics.size(); ++m) {
      const char* metric = kRequestMetrics[m];
      std::printf(
          "| request analytics %s p50 / p90 / p99, gathered (ms, client) | %.3f / %.3f / %.3f |\n",
          metric, req_med(gathered, m, &Percentiles::p50), req_med(gathered, m, &Percentiles::p90),
          req_med(gathered, m, &Percentiles::p99));
      if (!one.ok) {
        std::printf("| request analytics %s, one instance | FAILED (the one-instance ingest) |\n",
                    metric);
        continue;
      }
      std::printf(
          "| request analytics %s p50 / p90 / p99, one instance (ms, client) | %.3f / %.3f / %.3f "
          "|\n",
          metric, req_med(single, m, &Percentiles::p50), req_med(single, m, &Percentiles::p90),
          req_med(single, m, &Percentiles::p99));
      std::printf(
          "| request analytics %s: gathering cost at p50 (ms; gathered - one instance) | %.3f |\n",
          metric, req_med(gathered, m, &Percentiles::p50) - req_med(single, m, &Percentiles::p50));
    }
    if (one.ok) {
      std::printf(
          "| request analytics: gathered answers byte-identical to the one instance's | %lld of "
          "%lld (failed requests: gathered %lld, one instance %lld) |\n",
          static_cast<long long>(comparison.compared[0] - comparison.mismatches[0]),
          static_cast<long long>(comparison.compared[0]), static_cast<long long>(gathered.errors),
          static_cast<long long>(single.errors));
    } else {
      std::printf("| request analytics: gathered answers vs the one instance's | not compared |\n");
    }
  }
  if (failover.ok) {
    std::printf(
        "| failover (SIGKILL %s, %d of %d partitions; session.timeout.ms=%s; --standby-replicas "
        "%d, %.0f of %.0f taken over from standbys): group settled again (s) | %.2f |\n",
        failover.victim.c_str(), failover.victim_partitions, kPartitions, kSessionTimeoutMs,
        standby_replicas, failover.taken_from_standby, failover.gained, failover.settled_s);
    std::printf(
        "| failover: the killed instance's %zu workspaces answer 200 through the forwarding "
        "survivor (s) | %.2f |\n",
        failover.victim_workspaces.size(), failover.forwarded_s);
    std::printf("| failover: ... through their new owner (s) | %.2f |\n", failover.local_s);
    std::printf("| failover: the other workspaces answered 503 (s after the kill) | %s |\n",
                failover.other_first_bad_s < 0 ? "never"
                                               : (Fixed(failover.other_first_bad_s) + " to " +
                                                  Fixed(failover.other_last_bad_s))
                                                     .c_str());
    std::printf(
        "| failover: all-time answers of the killed instance's workspaces equal to before | %zu "
        "of %zu |\n",
        failover.victim_workspaces.size() - failover.answers_changed,
        failover.victim_workspaces.size());
  } else {
    std::printf("| failover | FAILED: %s |\n", failover.error.c_str());
  }
  auto cpu_row = [&](const char* what, const IngestResult& r) {
    if (!r.ok) {
      std::printf("| CPU per event, %s | FAILED |\n", what);
      return;
    }
    std::printf(
        "| CPU per event, %s (µs; incl. idle) | %.2f (idle %.2f; %.1f s, %.0f events/s) |\n", what,
        r.us_per_event, r.idle_us_per_event, r.seconds,
        static_cast<double>(events.events.size()) / r.seconds);
  };
  cpu_row("1 instance", one);
  cpu_row("3 instances, summed", three);
  if (one.ok && three.ok) {
    std::printf("| CPU per event, 3 instances / 1 instance | %.2fx |\n",
                three.us_per_event / one.us_per_event);
  }
  std::printf("\ntotal wall time %.0f s; load average after: %s\n", SecondsSince(wall0),
              tb::LoadAverage().c_str());
  if (keep) std::printf("kept %s\n", tmp.path().c_str());
  return failed || errors > 0 ? 1 : 0;
}
