#include "harness.h"

#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "common/sha256.h"
#include "common/strings.h"
#include "gen/generator.h"
#include "http/testing/http_client.h"
#include "kafka/admin.h"
#include "kafka/embedded_broker.h"
#include "kafka/producer.h"

namespace tally::integration {
namespace {

using Clock = std::chrono::steady_clock;

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Tail(const std::string& path, size_t bytes) {
  std::string s = ReadFileOrEmpty(path);
  if (s.size() > bytes) s = "..." + s.substr(s.size() - bytes);
  return s;
}

std::string TomlString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string TallyBinary() {
  if (const char* env = std::getenv("TALLY_IT_TALLY")) return env;
#ifdef TALLY_IT_TALLY_BIN
  return TALLY_IT_TALLY_BIN;
#else
  return "";
#endif
}

std::string TallydBinary() {
  if (const char* env = std::getenv("TALLY_IT_TALLYD")) return env;
#ifdef TALLY_IT_TALLYD_BIN
  return TALLY_IT_TALLYD_BIN;
#else
  return "";
#endif
}

// ---------------------------------------------------------------- TempDir

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/tally-it-XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp(" << templ << "): " << std::strerror(errno);
    return;
  }
  path_ = buf.data();
  keep_ = std::getenv("TALLY_IT_KEEP") != nullptr;
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  if (keep_) {
    std::fprintf(stderr, "[harness] keeping %s\n", path_.c_str());
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

// ---------------------------------------------------------------- Process

Process::~Process() {
  if (pid_ > 0 && Running()) Stop(SIGKILL);
}

Status Process::Start(const std::vector<std::string>& argv, const std::string& log_base) {
  if (pid_ > 0 && Running()) return Fail(ErrorCode::kFailedPrecondition, "already running");
  argv_ = argv;
  log_base_ = log_base;
  status_.reset();
  int out = open((log_base + ".out").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int err = open((log_base + ".err").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0 || err < 0) {
    if (out >= 0) close(out);
    if (err >= 0) close(err);
    return Fail(ErrorCode::kUnavailable, "cannot open logs at " + log_base);
  }
  std::vector<char*> args;
  for (const std::string& a : argv_) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(out);
    close(err);
    return Fail(ErrorCode::kUnavailable, std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec (the parent has threads).
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    dup2(out, 1);
    dup2(err, 2);
    close_range(3, ~0U, 0);  // no inherited sockets of the test process
    execv(args[0], args.data());
    const char msg[] = "harness: execv failed\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(127);
  }
  close(out);
  close(err);
  pid_ = pid;
  return Ok();
}

bool Process::Running() {
  if (pid_ <= 0 || status_) return false;
  int st = 0;
  pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = st;
    return false;
  }
  return r == 0;
}

void Process::Signal(int sig) {
  if (Running()) kill(pid_, sig);
}

Result<int> Process::Wait(Millis timeout) {
  auto deadline = Clock::now() + timeout;
  while (Running()) {
    if (Clock::now() > deadline) return Fail(ErrorCode::kUnavailable, "still running");
    std::this_thread::sleep_for(Millis(5));
  }
  if (!status_) return Fail(ErrorCode::kFailedPrecondition, "never started");
  return *status_;
}

void Process::Stop(int sig) {
  Signal(sig);
  if (!Wait(Millis(10000)) && Running()) {
    kill(pid_, SIGKILL);
    (void)Wait(Millis(10000));
  }
}

std::string Process::Describe() {
  if (Running()) return "running";
  if (!status_) return "not started";
  if (WIFEXITED(*status_)) return "exit code " + std::to_string(WEXITSTATUS(*status_));
  if (WIFSIGNALED(*status_)) return "killed by signal " + std::to_string(WTERMSIG(*status_));
  return "status " + std::to_string(*status_);
}

std::string Process::LogTail(size_t bytes) const {
  return "---- " + log_base_ + ".err (tail) ----\n" + Tail(log_base_ + ".err", bytes) + "\n---- " +
         log_base_ + ".out (tail) ----\n" + Tail(log_base_ + ".out", bytes / 3) + "\n----";
}

std::string Process::CommandLine() const {
  std::string s;
  for (const std::string& a : argv_) s += (s.empty() ? "" : " ") + a;
  return s;
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result<std::string> WaitForFile(const std::string& path, Millis timeout, Process* watch) {
  auto deadline = Clock::now() + timeout;
  std::string previous;
  while (Clock::now() < deadline) {
    std::string s = ReadFileOrEmpty(path);
    // A complete line, or content that stayed the same for one poll (no trailing newline).
    if (!s.empty() && (s.back() == '\n' || s == previous)) {
      return std::string(TrimWhitespace(s.substr(0, s.find('\n'))));
    }
    previous = s;
    if (watch && !watch->Running()) {
      return Fail(ErrorCode::kUnavailable, "`" + watch->CommandLine() + "` ended (" +
                                               watch->Describe() + ") before writing " + path +
                                               "\n" + watch->LogTail());
    }
    std::this_thread::sleep_for(Millis(20));
  }
  return Fail(ErrorCode::kUnavailable,
              "timed out waiting for " + path +
                  (watch ? "\n`" + watch->CommandLine() + "`\n" + watch->LogTail() : ""));
}

// ---------------------------------------------------------------- HTTP

std::string HttpResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return "";
}

struct HttpClient::Conn {
  http::testing::HttpClient client;
};

HttpClient::HttpClient() = default;
HttpClient::HttpClient(std::string host_port) : host_port_(std::move(host_port)) {}
HttpClient::~HttpClient() = default;

void HttpClient::Reset(std::string host_port) {
  conn_.reset();
  host_port_ = std::move(host_port);
}

Result<HttpResponse> HttpClient::Send(
    std::string_view method, std::string_view target,
    const std::vector<std::pair<std::string, std::string>>& headers, std::string_view body) {
  for (int attempt = 0;; ++attempt) {
    bool fresh = !conn_;
    if (fresh) {
      size_t colon = host_port_.rfind(':');
      if (colon == std::string::npos) {
        return Fail(ErrorCode::kInvalidArgument, "bad address '" + host_port_ + "'");
      }
      Result<http::testing::HttpClient> c = http::testing::HttpClient::Connect(
          host_port_.substr(0, colon),
          static_cast<uint16_t>(std::stoi(host_port_.substr(colon + 1))));
      if (!c) {
        return Fail(ErrorCode::kUnavailable, host_port_ + ": " + c.error().message);
      }
      conn_ = std::make_unique<Conn>(Conn{std::move(*c)});
    }
    Result<http::testing::HttpReply> r = conn_->client.Send(method, target, body, headers);
    if (!r) {
      conn_.reset();
      // A kept-alive connection the server closed meanwhile: one retry on a new connection.
      if (!fresh && attempt == 0) continue;
      return Fail(ErrorCode::kUnavailable, host_port_ + ": " + r.error().message);
    }
    HttpResponse out;
    out.status = r->status;
    out.body = std::move(r->body);
    for (auto& [k, v] : r->headers) out.headers.emplace_back(Lower(k), std::move(v));
    if (!r->keep_alive) conn_.reset();
    return out;
  }
}

std::string UrlEncode(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// ---------------------------------------------------------------- keys, Kafka, metrics

Status WriteKeysFile(const std::string& path, const std::vector<KeySpec>& keys,
                     const std::map<std::string, std::string>& bindings) {
  std::string text;
  for (const KeySpec& k : keys) {
    text += "[[keys]]\nname = " + TomlString(k.name) +
            "\nsha256 = " + TomlString(Sha256Hex(k.token)) + "\n";
    if (!k.user_id.empty()) text += "user_id = " + TomlString(k.user_id) + "\n";
    if (!k.workspaces.empty()) {
      text += "workspaces = {";
      bool first = true;
      for (const auto& [ws, role] : k.workspaces) {
        text += (first ? " " : ", ") + TomlString(ws) + " = " + TomlString(role);
        first = false;
      }
      text += " }\n";
    }
    if (!k.organizations.empty()) {
      text += "organizations = [";
      for (size_t i = 0; i < k.organizations.size(); ++i) {
        text += (i ? ", " : "") + TomlString(k.organizations[i]);
      }
      text += "]\n";
    }
    text += std::string("admin = ") + (k.admin ? "true" : "false") + "\n\n";
  }
  for (const auto& [ws, org] : bindings) {
    text +=
        "[[workspaces]]\nid = " + TomlString(ws) + "\norganization = " + TomlString(org) + "\n\n";
  }
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) return Fail(ErrorCode::kUnavailable, "cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return Fail(ErrorCode::kUnavailable, "cannot rename " + tmp);
  }
  return Ok();
}

Result<std::vector<ConsumedMessage>> ReadTopic(const std::string& brokers, const std::string& topic,
                                               Millis timeout) {
  return kafka::ReadTopicToEnd(brokers, topic, static_cast<int>(timeout.count()));
}

std::optional<double> MetricSum(std::string_view text, std::string_view name,
                                const std::vector<std::string>& labels) {
  std::optional<double> sum;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    if (line.empty() || line[0] == '#') continue;
    size_t name_end = line.find_first_of("{ ");
    if (name_end == std::string_view::npos || line.substr(0, name_end) != name) continue;
    std::string_view label_text;
    size_t value_pos = name_end;
    if (line[name_end] == '{') {
      size_t close = line.find('}', name_end);
      if (close == std::string_view::npos) continue;
      label_text = line.substr(name_end, close - name_end + 1);
      value_pos = close + 1;
    }
    bool match = true;
    for (const std::string& l : labels) match &= label_text.find(l) != std::string_view::npos;
    if (!match) continue;
    std::string value(line.substr(value_pos));
    sum = sum.value_or(0) + std::strtod(value.c_str(), nullptr);
  }
  return sum;
}

::testing::AssertionResult ExitsWith(Process& process, int code, Millis timeout) {
  Result<int> st = process.Wait(timeout);
  if (!st) {
    std::string tail = process.LogTail();
    process.Stop(SIGKILL);
    return ::testing::AssertionFailure() << "`" << process.CommandLine() << "` still running after "
                                         << timeout.count() << " ms (killed)\n"
                                         << tail;
  }
  if (WIFEXITED(*st) && WEXITSTATUS(*st) == code) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "`" << process.CommandLine() << "` ended with " << process.Describe()
         << ", expected exit code " << code << "\n"
         << process.LogTail();
}

// ---------------------------------------------------------------- Stack

Stack::Stack() = default;
Stack::~Stack() {
  if (::testing::Test::HasFailure()) {
    std::fprintf(stderr, "[harness] test failed; logs in %s (set TALLY_IT_KEEP=1 to keep it)\n",
                 dir_.path().c_str());
  }
  producer_.reset();
  if (meta_) rd_kafka_destroy(meta_);
  tallyd_.Stop(SIGKILL);
  broker_.Stop(SIGKILL);
  in_process_broker_.reset();
}

::testing::AssertionResult Stack::StartBroker(int partitions) {
  return StartBrokerWith({"--partitions", std::to_string(partitions)});
}

::testing::AssertionResult Stack::StartBrokerWithDefaults() { return StartBrokerWith({}); }

::testing::AssertionResult Stack::StartBrokerWith(const std::vector<std::string>& extra_args) {
  if (TallyBinary().empty()) return ::testing::AssertionFailure() << "tally binary not built";
  std::string addr_file = broker_addr_file();
  std::vector<std::string> argv = {TallyBinary(), "broker", "--addr-file", addr_file};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  Status s = broker_.Start(argv, dir_.File("broker"));
  if (!s) return ::testing::AssertionFailure() << s.error().message;
  Result<std::string> addr =
      kafka::ReadBrokerAddressFile(addr_file, Millis(30000), [this] { return !broker_.Running(); });
  if (!addr) {
    return ::testing::AssertionFailure() << addr.error().message << "\n`" << broker_.CommandLine()
                                         << "` (" << broker_.Describe() << ")\n"
                                         << broker_.LogTail();
  }
  bootstrap_ = *addr;
  return ConnectClients();
}

::testing::AssertionResult Stack::StartInProcessBroker(int partitions, int brokers) {
  kafka::EmbeddedBrokerOptions options;
  options.brokers = brokers;
  options.topics = {{kTopic, partitions}, {kDlqTopic, 1}, {std::string(kTopic) + ".cluster", 1}};
  auto broker = kafka::EmbeddedBroker::Start(options);
  if (!broker) return ::testing::AssertionFailure() << broker.error().message;
  in_process_broker_ = std::move(*broker);
  bootstrap_ = in_process_broker_->bootstrap();
  return ConnectClients();
}

::testing::AssertionResult Stack::ConnectClients() {
  kafka::ProducerOptions options;
  options.brokers = bootstrap_;
  Result<std::unique_ptr<kafka::Producer>> p = kafka::Producer::Create(options);
  if (!p) return ::testing::AssertionFailure() << "producer: " << p.error().message;
  producer_ = std::move(*p);
  return ConnectMetadataClient();
}

::testing::AssertionResult Stack::ConnectMetadataClient() {
  if (meta_) rd_kafka_destroy(meta_);
  meta_ = nullptr;
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap_.c_str(), errstr, sizeof errstr) !=
      RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    return ::testing::AssertionFailure() << errstr;
  }
  meta_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (!meta_) {
    rd_kafka_conf_destroy(conf);
    return ::testing::AssertionFailure() << "rd_kafka_new: " << errstr;
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult Stack::StartTallyd(const std::vector<std::string>& extra_args) {
  if (TallydBinary().empty()) return ::testing::AssertionFailure() << "tallyd binary not built";
  if (bootstrap_.empty()) return ::testing::AssertionFailure() << "start the broker first";
  std::string keys_file = dir_.File("keys.toml");
  if (Status s = WriteKeysFile(keys_file, keys_, bindings_); !s) {
    return ::testing::AssertionFailure() << s.error().message;
  }
  std::string port_file = dir_.File("tallyd.port");
  std::remove(port_file.c_str());
  std::vector<std::string> argv = {TallydBinary(),
                                   "--brokers",
                                   bootstrap_,
                                   "--topic",
                                   kTopic,
                                   "--group",
                                   group_,
                                   "--data-dir",
                                   dir_.File("data"),
                                   "--listen",
                                   "127.0.0.1:0",
                                   "--port-file",
                                   port_file,
                                   "--keys",
                                   keys_file,
                                   "--cache-ttl",
                                   std::to_string(cache_ttl_),
                                   "--now",
                                   kNow,
                                   "--max-future",
                                   "1d"};
  // --max-future: generated events run to the end of kToday, past kNow (noon).
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  ++tallyd_starts_;
  Status s = tallyd_.Start(argv, dir_.File("tallyd"));
  if (!s) return ::testing::AssertionFailure() << s.error().message;
  Result<std::string> addr = WaitForFile(port_file, Millis(60000), &tallyd_);
  if (!addr) return ::testing::AssertionFailure() << addr.error().message;
  http_.Reset(*addr);
  return ::testing::AssertionSuccess();
}

void Stack::StopTallyd(int sig) { tallyd_.Stop(sig); }

::testing::AssertionResult Stack::WaitForReady(Millis timeout) {
  auto deadline = Clock::now() + timeout;
  std::string last = "no answer yet";
  for (;;) {
    if (!tallyd_.Running()) {
      return ::testing::AssertionFailure()
             << "tallyd is not running (" << tallyd_.Describe() << ") while waiting for /readyz\n"
             << tallyd_.LogTail();
    }
    Result<HttpResponse> r = http_.Send("GET", "/readyz");
    if (r && r->status == 200) return ::testing::AssertionSuccess();
    last = r ? std::to_string(r->status) + " " + r->body : r.error().message;
    if (Clock::now() > deadline) {
      return ::testing::AssertionFailure()
             << "/readyz not 200 within " << timeout.count() << " ms; last answer: " << last << "\n"
             << tallyd_.LogTail();
    }
    std::this_thread::sleep_for(Millis(10));
  }
}

::testing::AssertionResult Stack::StartTally(Process* process, const std::vector<std::string>& args,
                                             const std::string& log_name) {
  if (TallyBinary().empty()) return ::testing::AssertionFailure() << "tally binary not built";
  std::vector<std::string> argv = {TallyBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  Status s = process->Start(argv, dir_.File(log_name));
  if (!s) return ::testing::AssertionFailure() << s.error().message;
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult Stack::RunTally(const std::vector<std::string>& args,
                                           const std::string& log_name, Millis timeout) {
  Process p;
  if (auto r = StartTally(&p, args, log_name); !r) return r;
  return ExitsWith(p, 0, timeout);
}

::testing::AssertionResult Stack::Produce(const std::vector<std::string>& lines,
                                          const std::vector<std::string>& keys) {
  if (!producer_) return ::testing::AssertionFailure() << "no producer (broker not started)";
  for (size_t i = 0; i < lines.size(); ++i) {
    Status s = producer_->Produce(kTopic, i < keys.size() ? keys[i] : "", lines[i]);
    if (!s) {
      return ::testing::AssertionFailure() << "produce line " << i << ": " << s.error().message;
    }
  }
  if (Status s = producer_->Flush(60000); !s) {
    return ::testing::AssertionFailure() << "flush: " << s.error().message;
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult Stack::ProducePaced(const std::vector<std::string>& lines,
                                               const std::vector<std::string>& keys, size_t chunk,
                                               Millis catch_up_timeout) {
  for (size_t begin = 0; begin < lines.size(); begin += chunk) {
    size_t end = std::min(lines.size(), begin + chunk);
    std::vector<std::string> l(lines.begin() + begin, lines.begin() + end);
    std::vector<std::string> k(keys.begin() + std::min(begin, keys.size()),
                               keys.begin() + std::min(end, keys.size()));
    if (auto r = Produce(l, k); !r) return r;
    if (auto r = WaitForCatchUp(catch_up_timeout); !r) {
      return r << "\n(after producing lines [0, " << end << ") of " << lines.size() << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

Stack::IngestState Stack::ReadIngestState() {
  IngestState st;
  Result<HttpResponse> r = http_.Send("GET", "/readyz");
  if (!r) {
    st.description = "/readyz: " + r.error().message;
    return st;
  }
  if (partitions_ == 0) {
    Result<int> partitions = kafka::PartitionCount(bootstrap_, kTopic, 5000);
    if (!partitions) {
      st.description = "PartitionCount: " + partitions.error().message;
      return st;
    }
    partitions_ = *partitions;
  }
  nlohmann::json j = nlohmann::json::parse(r->body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    st.description = "/readyz answered " + std::to_string(r->status) + " with non-JSON: " + r->body;
    return st;
  }
  // {"ready":bool,"ingest":{...}} as specified, or {"status":"ready","details":{"ingest":...}}.
  const nlohmann::json* ingest = nullptr;
  if (j.contains("ingest")) {
    ingest = &j["ingest"];
  } else if (j.contains("details") && j["details"].is_object() && j["details"].contains("ingest")) {
    ingest = &j["details"]["ingest"];
  }
  std::map<int, int64_t> next, read;
  if (ingest && ingest->is_object() && ingest->contains("partitions")) {
    for (const auto& p : (*ingest)["partitions"]) {
      if (p.value("topic", "") == kTopic) {
        next[p.value("partition", -1)] = p.value("next_offset", int64_t{-1});
        read[p.value("partition", -1)] = p.value("read_offset", int64_t{-1});
      }
    }
  }
  st.ready =
      j.contains("ready") ? j.value("ready", false) : j.value("status", "") == std::string("ready");
  st.answered = true;
  bool all = st.ready;
  std::string lag;
  for (int p = 0; p < partitions_; ++p) {
    std::optional<std::pair<int64_t, int64_t>> wm;
    int64_t lo = 0, hi = 0;
    rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(meta_, kTopic, p, &lo, &hi, 5000);
    if (err == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION) {
      // The partition's leader moved (a fault test): librdkafka's watermark query does not
      // refresh its metadata, a new client starts from fresh metadata.
      if (ConnectMetadataClient()) {
        err = rd_kafka_query_watermark_offsets(meta_, kTopic, p, &lo, &hi, 5000);
      }
    }
    if (err) {
      all = false;
      st.answered = false;
      lag += " p" + std::to_string(p) + ": watermarks error " + rd_kafka_err2str(err) + ";";
      continue;
    }
    wm.emplace(lo, hi);
    auto it = next.find(p);
    int64_t consumed_to = it == next.end() ? wm->first : it->second;
    st.lag += std::max<int64_t>(0, wm->second - consumed_to);
    if (consumed_to != wm->second) {
      all = false;
      lag += " p" + std::to_string(p) + ": next_offset " +
             (it == next.end() ? std::string("absent") : std::to_string(it->second)) + " vs high " +
             std::to_string(wm->second) + ";";
    } else if (it != next.end() && read[p] != it->second) {
      // Caught up: nothing can be read but not stored, so the two offsets must agree.
      all = false;
      lag += " p" + std::to_string(p) + ": read_offset " + std::to_string(read[p]) +
             " != next_offset " + std::to_string(it->second) + " at the high watermark;";
    }
  }
  st.caught_up = all;
  st.description =
      "ready=" + std::string(st.ready ? "true" : "false") + lag + " /readyz=" + r->body;
  return st;
}

::testing::AssertionResult Stack::WaitForCatchUp(Millis timeout) {
  auto deadline = Clock::now() + timeout;
  std::string state = "no /readyz answer yet";
  int tries = 0;
  for (;;) {
    ++tries;
    if (!tallyd_.Running()) {
      return ::testing::AssertionFailure()
             << "tallyd is not running (" << tallyd_.Describe() << ") while waiting for catch-up\n"
             << tallyd_.LogTail();
    }
    IngestState st = ReadIngestState();
    if (st.caught_up) return ::testing::AssertionSuccess();
    state = st.description;
    if (Clock::now() > deadline) {
      return ::testing::AssertionFailure()
             << "tallyd did not catch up within " << timeout.count() << " ms (" << tries
             << " polls); last state: " << state << "\n"
             << tallyd_.LogTail();
    }
    std::this_thread::sleep_for(Millis(50));
  }
}

std::string Stack::MetricsText() {
  Result<HttpResponse> r = http_.Send("GET", "/metrics");
  if (!r || r->status != 200) return "";
  return r->body;
}

::testing::AssertionResult WaitForReadyz(HttpClient& http, int status, Millis timeout,
                                         std::string* body) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last;
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = http.Send("GET", "/readyz");
    if (r) {
      last = r->body;
      if (r->status == status) {
        if (body) *body = last;
        return ::testing::AssertionSuccess();
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return ::testing::AssertionFailure()
         << "/readyz of " << http.host_port() << " did not answer " << status << " within "
         << timeout.count() << " ms; last: " << last.substr(0, 600);
}

BackgroundProduce::BackgroundProduce(Stack* stack, std::vector<std::string> lines,
                                     std::vector<std::string> keys)
    : lines_(std::move(lines)),
      keys_(std::move(keys)),
      result_(::testing::AssertionFailure() << "not finished"),
      thread_([this, stack] { result_ = stack->Produce(lines_, keys_); }) {}

BackgroundProduce::~BackgroundProduce() {
  if (thread_.joinable()) thread_.join();
}

::testing::AssertionResult BackgroundProduce::Join() {
  if (thread_.joinable()) thread_.join();
  return result_;
}

uint64_t TestSeed(const char* tag) {
  uint64_t seed = std::random_device{}();
  if (const char* s = std::getenv("TALLY_IT_SEED")) seed = std::strtoull(s, nullptr, 10);
  std::fprintf(stderr, "[%s] seed %llu (replay with TALLY_IT_SEED=%llu)\n", tag,
               static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  return seed;
}

void GenerateEvents(int64_t n, uint64_t seed, std::vector<std::string>* lines,
                    std::vector<std::string>* keys) {
  gen::GenOptions o;
  o.events = n;
  o.seed = seed;
  o.end_day = Stack::kToday;
  gen::Generator g(o);
  gen::GeneratedLine line;
  while (g.Next(&line)) {
    lines->push_back(line.json);
    keys->push_back(line.key);
  }
}

}  // namespace tally::integration
