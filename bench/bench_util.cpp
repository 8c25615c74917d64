#include "bench_util.h"

#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <simdjson.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/calendar.h"
#include "common/sha256.h"
#include "common/strings.h"
#include "kafka/embedded_broker.h"
#include "kafka/producer.h"

namespace tally::bench {
namespace {

std::string ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return {};
  return std::string(TrimWhitespace(line));
}

double SecondsSince(SteadyClock::time_point t) {
  return std::chrono::duration<double>(SteadyClock::now() - t).count();
}

}  // namespace

// ---------------------------------------------------------------- processes and files

Result<std::unique_ptr<ChildProcess>> ChildProcess::Spawn(const std::vector<std::string>& argv,
                                                          const std::string& log_path) {
  if (argv.empty()) return Fail(ErrorCode::kInvalidArgument, "empty argv");
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return Fail(ErrorCode::kUnavailable, "fork failed");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    ::execvp(args[0], args.data());
    std::fprintf(stderr, "exec %s failed\n", args[0]);
    ::_exit(127);
  }
  std::unique_ptr<ChildProcess> p(new ChildProcess());
  p->pid_ = pid;
  p->log_path_ = log_path;
  return p;
}

ChildProcess::~ChildProcess() { Stop(); }

bool ChildProcess::Running() {
  if (exited_ || pid_ <= 0) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) exited_ = true;
  return !exited_;
}

void ChildProcess::Stop(int timeout_ms) {
  if (!Running()) return;
  ::kill(pid_, SIGTERM);
  auto start = SteadyClock::now();
  while (Running() && SecondsSince(start) * 1000 < timeout_ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (Running()) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    exited_ = true;
  }
}

TempDir::TempDir(std::string_view prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string templ =
      std::string(base && *base ? base : "/tmp") + "/" + std::string(prefix) + "XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) != nullptr) path_ = buf.data();
}

TempDir::~TempDir() {
  if (keep_ || path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

Result<std::string> WaitForFile(const std::string& path, int timeout_ms, ChildProcess* watch) {
  auto start = SteadyClock::now();
  while (SecondsSince(start) * 1000 < timeout_ms) {
    std::string line = ReadFirstLine(path);
    if (!line.empty()) return line;
    if (watch && !watch->Running()) {
      return Fail(ErrorCode::kUnavailable,
                  "process exited before writing " + path + ":\n" + FileTail(watch->log_path()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Fail(ErrorCode::kUnavailable, "timed out waiting for " + path);
}

Result<std::string> WaitForBrokerAddress(const std::string& path, int timeout_ms,
                                         ChildProcess* watch) {
  auto address = kafka::ReadBrokerAddressFile(path, std::chrono::milliseconds(timeout_ms),
                                              [watch] { return watch && !watch->Running(); });
  if (!address && watch && !watch->Running()) {
    return Fail(ErrorCode::kUnavailable,
                "process exited before writing " + path + ":\n" + FileTail(watch->log_path()));
  }
  return address;
}

std::string FileTail(const std::string& path, size_t bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > bytes ? s.substr(s.size() - bytes) : s;
}

// ---------------------------------------------------------------- tallyd

Result<std::unique_ptr<Tallyd>> Tallyd::Start(const TallydOptions& options) {
  std::unique_ptr<Tallyd> t(new Tallyd());
  t->dir_ = std::make_unique<TempDir>("tally-bench-");
  if (t->dir_->path().empty()) return Fail(ErrorCode::kUnavailable, "mkdtemp failed");
  if (options.keep_data_dir) t->dir_->keep();
  const std::string& dir = t->dir_->path();
  const std::string keys = dir + "/keys.toml";
  {
    std::ofstream out(keys);
    out << "[[keys]]\nname = \"bench-admin\"\nsha256 = \"" << Sha256Hex(kBenchToken)
        << "\"\nuser_id = \"bench\"\nadmin = true\n";
    if (!out) return Fail(ErrorCode::kUnavailable, "cannot write " + keys);
  }
  std::vector<std::string> argv = {options.binary,
                                   "--brokers",
                                   "embedded",
                                   "--data-dir",
                                   dir + "/data",
                                   "--listen",
                                   "127.0.0.1:0",
                                   "--port-file",
                                   dir + "/port",
                                   "--keys",
                                   keys,
                                   "--cache-ttl",
                                   std::to_string(options.cache_ttl_s),
                                   "--server-timing",
                                   "--partitions",
                                   std::to_string(options.partitions)};
  if (!options.now.empty()) {
    argv.push_back("--now");
    argv.push_back(options.now);
  }
  for (const auto& a : options.extra_args) argv.push_back(a);
  auto proc = ChildProcess::Spawn(argv, dir + "/tallyd.log");
  if (!proc) return std::unexpected(proc.error());
  t->process_ = std::move(*proc);
  auto listen = WaitForFile(dir + "/port", 60'000, t->process_.get());
  if (!listen) return std::unexpected(listen.error());
  auto broker = WaitForBrokerAddress(dir + "/data/broker.addr", 60'000, t->process_.get());
  if (!broker) return std::unexpected(broker.error());
  t->broker_ = *broker;
  auto endpoint = ConnectWhenReady(t->process_.get(), *listen, SteadyClock::now(), 60);
  if (!endpoint) return std::unexpected(endpoint.error());
  t->host_ = std::move(endpoint->host);
  t->port_ = endpoint->port;
  t->client_ = std::move(endpoint->client);
  return t;
}

Result<TallydEndpoint> ConnectWhenReady(ChildProcess* process, const std::string& listen,
                                        SteadyClock::time_point since, double timeout_s) {
  TallydEndpoint out;
  const size_t colon = listen.rfind(':');
  out.host = listen.substr(0, colon);
  out.port = static_cast<uint16_t>(std::stoi(listen.substr(colon + 1)));
  auto client = http::testing::HttpClient::Connect(out.host, out.port);
  if (!client) return std::unexpected(client.error());
  out.client = std::make_unique<http::testing::HttpClient>(std::move(*client));
  while (true) {
    auto r = out.client->Send("GET", "/readyz");
    if (r && r->status == 200) return out;
    if (!process->Running()) {
      return Fail(ErrorCode::kUnavailable,
                  "tallyd exited while starting:\n" + FileTail(process->log_path()));
    }
    if (SecondsSince(since) > timeout_s) {
      return Fail(ErrorCode::kUnavailable, "tallyd not ready after " +
                                               std::to_string(static_cast<int>(timeout_s)) +
                                               " s:\n" + FileTail(process->log_path()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

Tallyd::~Tallyd() {
  client_.reset();
  if (process_) process_->Stop();
}

Status ReadyzOffsets(http::testing::HttpClient& client, int partitions, std::vector<int64_t>* out,
                     std::vector<int64_t>* read) {
  auto r = client.Send("GET", "/readyz");
  if (!r) return std::unexpected(r.error());
  out->assign(partitions, 0);
  if (read) read->assign(partitions, 0);
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (auto err = parser.parse(r->body).get(doc); err) {
    return Fail(ErrorCode::kInternal, "/readyz: not JSON: " + r->body);
  }
  simdjson::dom::array parts;
  if (auto err = doc.at_pointer("/details/ingest/partitions").get(parts); err) {
    return Ok();  // not assigned yet
  }
  for (simdjson::dom::element p : parts) {
    int64_t partition = 0, next = 0, read_offset = 0;
    if (p["partition"].get(partition) || p["next_offset"].get(next)) continue;
    if (partition < 0 || partition >= partitions) continue;
    (*out)[partition] = next;
    if (read) (*read)[partition] = p["read_offset"].get(read_offset) ? next : read_offset;
  }
  return Ok();
}

Result<double> PrometheusValue(std::string_view text, std::string_view name) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (line.size() > name.size() && line.substr(0, name.size()) == name &&
        line[name.size()] == ' ') {
      return std::strtod(std::string(line.substr(name.size() + 1)).c_str(), nullptr);
    }
    pos = end + 1;
  }
  return Fail(ErrorCode::kNotFound, "no sample " + std::string(name));
}

// ---------------------------------------------------------------- events

EventSet GenerateEvents(const gen::GenOptions& options, int partitions,
                        const std::function<void(const gen::GeneratedLine&)>& on_line) {
  EventSet set;
  set.partitions = partitions;
  gen::Generator generator(options);
  gen::GeneratedLine line;
  set.events.reserve(static_cast<size_t>(std::max<int64_t>(0, options.events)));
  set.arena.reserve(static_cast<size_t>(std::max<int64_t>(0, options.events)) * 560);
  while (generator.Next(&line)) {
    if (on_line) on_line(line);
    EventSet::Event e;
    e.offset = set.arena.size();
    e.value_len = static_cast<uint32_t>(line.json.size());
    e.key_len = static_cast<uint32_t>(line.key.size());
    e.partition = line.key.empty() ? 0
                                   : rd_kafka_msg_partitioner_consistent(
                                         nullptr, line.key.data(), line.key.size(), partitions,
                                         nullptr, nullptr);
    set.arena += line.json;
    set.arena += line.key;
    set.value_bytes += line.json.size();
    set.events.push_back(e);
  }
  return set;
}

// ---------------------------------------------------------------- paced producing

Result<PaceResult> ProduceAndPace(const EventSet& set, const std::string& brokers,
                                  const PaceOptions& options, const ProgressFn& progress) {
  const int parts = set.partitions;
  // cum[p][k] = value bytes of the first k messages of partition p, so the bytes between the
  // consumer's offset and ours are one subtraction.
  std::vector<std::vector<uint64_t>> cum(parts, std::vector<uint64_t>{0});
  for (const auto& e : set.events)
    cum[e.partition].push_back(cum[e.partition].back() + e.value_len);

  kafka::ProducerOptions po;
  po.brokers = brokers;
  po.linger_ms = options.linger_ms;
  po.extra = {{"compression.type", options.compression}};
  auto producer = kafka::Producer::Create(po);
  if (!producer) return std::unexpected(producer.error());

  // read: taken by the consumer (pacing); next: stored by it (completion).
  std::vector<int64_t> sent(parts, 0), read(parts, 0), next(parts, 0);
  PaceResult result;
  const auto max_lag = static_cast<uint64_t>(options.max_lag_bytes);
  const auto min_refresh = std::chrono::microseconds(options.min_refresh_us);
  auto last_refresh = SteadyClock::time_point{};
  auto last_progress = SteadyClock::now();
  int64_t consumed_total = 0, read_total = 0;
  auto refresh = [&]() -> Status {
    if (auto st = progress(&read, &next); !st) return st;
    ++result.progress_polls;
    last_refresh = SteadyClock::now();
    int64_t total = 0, total_read = 0;
    for (int64_t n : next) total += n;
    for (int64_t n : read) total_read += n;
    if (total != consumed_total || total_read != read_total) {
      consumed_total = total;
      read_total = total_read;
      last_progress = last_refresh;
    }
    return Ok();
  };

  const auto t0 = SteadyClock::now();
  for (const auto& e : set.events) {
    const int p = e.partition;
    if (cum[p][sent[p] + 1] - cum[p][std::min(read[p], sent[p])] > max_lag) {
      const auto wait_start = SteadyClock::now();
      while (cum[p][sent[p] + 1] - cum[p][std::min(read[p], sent[p])] > max_lag) {
        auto now = SteadyClock::now();
        if (now - last_refresh >= min_refresh) {
          if (auto st = refresh(); !st) return std::unexpected(st.error());
          continue;
        }
        if (now - last_progress > std::chrono::milliseconds(options.stall_timeout_ms)) {
          return Fail(ErrorCode::kUnavailable, "the consumer made no progress for " +
                                                   std::to_string(options.stall_timeout_ms) +
                                                   " ms");
        }
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
      result.blocked_seconds += SecondsSince(wait_start);
    }
    if (auto st = (*producer)->Produce(options.topic, set.key(e), set.value(e), {}, p); !st) {
      return std::unexpected(st.error());
    }
    ++sent[p];
  }
  result.produce_seconds = SecondsSince(t0);
  if (auto st = (*producer)->Flush(120'000); !st) return std::unexpected(st.error());
  while (true) {
    bool done = true;
    for (int p = 0; p < parts; ++p) done = done && next[p] >= sent[p];
    if (done) break;
    if (SteadyClock::now() - last_progress > std::chrono::milliseconds(options.stall_timeout_ms)) {
      return Fail(ErrorCode::kUnavailable,
                  "the consumer stopped short: " + std::to_string(consumed_total) + " of " +
                      std::to_string(set.events.size()) + " consumed");
    }
    auto wait = min_refresh - (SteadyClock::now() - last_refresh);
    if (wait > SteadyClock::duration::zero()) std::this_thread::sleep_for(wait);
    if (auto st = refresh(); !st) return std::unexpected(st.error());
  }
  result.seconds = SecondsSince(t0);
  result.events = static_cast<int64_t>(set.events.size());
  result.bytes = set.value_bytes;
  return result;
}

ProgressFn ReadyzProgress(http::testing::HttpClient* client, int partitions) {
  return [client, partitions](std::vector<int64_t>* read, std::vector<int64_t>* stored) {
    return ReadyzOffsets(*client, partitions, stored, read);
  };
}

// ---------------------------------------------------------------- statistics

double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  double rank = std::ceil(q * static_cast<double>(values.size()));
  size_t idx = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  return values[std::min(idx, values.size() - 1)];
}

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

std::string MachineSummary() {
  std::string model = "unknown CPU";
  {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("model name", 0) == 0) {
        model = std::string(TrimWhitespace(line.substr(line.find(':') + 1)));
        break;
      }
    }
  }
  double mem_gib = 0;
  {
    std::ifstream in("/proc/meminfo");
    std::string key;
    double kb = 0;
    while (in >> key >> kb) {
      if (key == "MemTotal:") {
        mem_gib = kb / 1024 / 1024;
        break;
      }
      in.ignore(1 << 10, '\n');
    }
  }
  struct utsname u {};
  ::uname(&u);
  char date[32];
  std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  char buf[512];
  std::snprintf(buf, sizeof buf, "nproc=%u, CPU %s, RAM %.1f GiB, kernel %s, %s",
                std::thread::hardware_concurrency(), model.c_str(), mem_gib, u.release, date);
  return buf;
}

namespace {

// tallyd's tally_events_applied_total (from /metrics, on a new connection: a benchmark's
// connections may have been idle past the server's keep-alive timeout).
Result<double> EventsApplied(const std::string& host, uint16_t port) {
  auto client = http::testing::HttpClient::Connect(host, port);
  if (!client) return std::unexpected(client.error());
  auto metrics = client->Send("GET", "/metrics");
  if (!metrics) return std::unexpected(metrics.error());
  if (metrics->status != 200) {
    return Fail(ErrorCode::kUnavailable, "/metrics: HTTP " + std::to_string(metrics->status));
  }
  return PrometheusValue(metrics->body, "tally_events_applied_total");
}

}  // namespace

void AddWorldFlags(CLI::App* app, gen::GenOptions* world, const std::string& agents_help) {
  app->add_option("--users", world->users, "Generated users")->capture_default_str();
  app->add_option("--agents", world->agents, agents_help)->capture_default_str();
  app->add_option("--workflows", world->workflows, "Generated workflows")->capture_default_str();
  app->add_option("--workspaces", world->workspaces, "Generated workspaces")->capture_default_str();
  app->add_option("--organizations", world->organizations, "Generated organizations")
      ->capture_default_str();
  app->add_option("--days", world->days, "Days of generated history ending at --end-day")
      ->capture_default_str();
  app->add_option("--end-day", world->end_day, "Last generated day; tallyd's --now is noon of it")
      ->capture_default_str();
}

void AddBackgroundIngestFlags(CLI::App* app, double* rate, int* days, const std::string& into) {
  app->add_option("--ingest-rate", *rate,
                  "While measuring, `tally produce --rate` this many events/s of the executions "
                  "mix (same seed: the same workspaces, users and agents) into " +
                      into + " (0 = idle); the rate it applied is reported")
      ->capture_default_str();
  app->add_option("--ingest-days", *days,
                  "Days the ingested events spread over, ending the day before --end-day (1: "
                  "live traffic on today's buckets; 90: a backfill streamed through the topic)")
      ->check(CLI::Range(1, 3650))
      ->capture_default_str();
}

Result<std::unique_ptr<BackgroundIngest>> BackgroundIngest::Start(
    const BackgroundIngestOptions& o) {
  auto queried = ParseDay(o.queried_end_day);
  if (!queried) return std::unexpected(queried.error());
  const std::string file = o.dir + "/background.ndjson";
  const int64_t events = static_cast<int64_t>(o.rate * o.seconds);
  std::vector<std::string> argv = {o.cli,        "gen",
                                   "--mix",      "executions",
                                   "--events",   std::to_string(events),
                                   "--end-day",  FormatDay(*queried - 1),
                                   "--days",     std::to_string(o.days),
                                   "--seed",     std::to_string(o.seed),
                                   "--first-id", std::to_string(o.first_id),
                                   "-o",         file};
  argv.insert(argv.end(), o.gen_args.begin(), o.gen_args.end());
  auto gen = ChildProcess::Spawn(argv, o.dir + "/gen.log");
  if (!gen) return std::unexpected(gen.error());
  while ((*gen)->Running()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (::access(file.c_str(), R_OK) != 0) {
    return Fail(ErrorCode::kUnavailable, "tally gen failed: " + FileTail(o.dir + "/gen.log"));
  }
  std::unique_ptr<BackgroundIngest> b(new BackgroundIngest());
  auto producer = ChildProcess::Spawn(
      {o.cli, "produce", "--brokers", o.brokers, "--rate", std::to_string(o.rate), file},
      o.dir + "/produce.log");
  if (!producer) return std::unexpected(producer.error());
  b->producer_ = std::move(*producer);
  b->host_ = o.host;
  b->port_ = o.port;
  std::this_thread::sleep_for(std::chrono::seconds(3));
  auto applied = EventsApplied(o.host, o.port);
  if (!applied) return std::unexpected(applied.error());
  b->applied_before_ = *applied;
  b->from_ = SteadyClock::now();
  return b;
}

Result<double> BackgroundIngest::Finish() {
  auto applied = EventsApplied(host_, port_);
  const double seconds = SecondsSince(from_);
  producer_->Stop(2000);
  if (!applied) return std::unexpected(applied.error());
  return (*applied - applied_before_) / seconds;
}

bool StartBackgroundIngest(const BackgroundIngestOptions& options,
                           std::unique_ptr<BackgroundIngest>* out) {
  out->reset();
  if (options.rate <= 0) return true;
  auto started = BackgroundIngest::Start(options);
  if (!started) {
    std::fprintf(stderr, "background ingest: %s\n", started.error().message.c_str());
    return false;
  }
  *out = std::move(*started);
  return true;
}

bool FinishBackgroundIngest(std::unique_ptr<BackgroundIngest>* ingest, double asked,
                            const std::string& into) {
  if (!*ingest) return true;
  auto rate = (*ingest)->Finish();
  ingest->reset();
  if (!rate) {
    std::fprintf(stderr, "background ingest: %s\n", rate.error().message.c_str());
    return false;
  }
  std::printf("ingest into %s while measuring: %.0f events/s applied (asked %.0f)\n", into.c_str(),
              *rate, asked);
  return true;
}

std::vector<std::string> GenShapeArgs(int users, int agents, int workspaces, int organizations) {
  return {
      "--users",      std::to_string(users),      "--agents",        std::to_string(agents),
      "--workspaces", std::to_string(workspaces), "--organizations", std::to_string(organizations)};
}

double ProcessCpuSeconds(pid_t pid) {
  if (pid == 0) {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
  }
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command (field 2) may hold spaces: count fields after its closing parenthesis.
  size_t close = stat.rfind(')');
  if (close == std::string::npos || close + 2 > stat.size()) return -1;
  std::vector<std::string> fields;
  std::string f;
  for (char c : stat.substr(close + 2)) {
    if (c == ' ') {
      fields.push_back(f);
      f.clear();
    } else {
      f += c;
    }
  }
  // After the command: state is [0], utime [11], stime [12].
  if (fields.size() < 13) return -1;
  return (std::strtod(fields[11].c_str(), nullptr) + std::strtod(fields[12].c_str(), nullptr)) /
         static_cast<double>(sysconf(_SC_CLK_TCK));
}

double ParseServerTiming(std::string_view v) {
  size_t pos = v.find("dur=");
  if (pos == std::string_view::npos) return -1;
  return std::strtod(std::string(v.substr(pos + 4)).c_str(), nullptr);
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

}  // namespace tally::bench
