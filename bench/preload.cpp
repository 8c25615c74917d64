#include "preload.h"

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>

#include "aggregate/aggregator.h"
#include "event/event_parser.h"
#include "store/store.h"

namespace tally::bench {
namespace {

double SecondsSince(SteadyClock::time_point t) {
  return std::chrono::duration<double>(SteadyClock::now() - t).count();
}

// A bounded queue of line batches between the generator thread and the loader.
class BatchQueue {
 public:
  explicit BatchQueue(size_t capacity) : capacity_(capacity) {}
  void Push(std::vector<std::string> batch) {
    std::unique_lock lock(mu_);
    not_full_.wait(lock, [&] { return q_.size() < capacity_; });
    q_.push_back(std::move(batch));
    not_empty_.notify_one();
  }
  // Empty vector = end of stream.
  std::vector<std::string> Pop() {
    std::unique_lock lock(mu_);
    not_empty_.wait(lock, [&] { return !q_.empty(); });
    std::vector<std::string> b = std::move(q_.front());
    q_.pop_front();
    not_full_.notify_one();
    return b;
  }

 private:
  size_t capacity_;
  std::mutex mu_;
  std::condition_variable not_full_, not_empty_;
  std::deque<std::vector<std::string>> q_;
};

}  // namespace

Result<PreloadStats> Preload(const PreloadOptions& options,
                             const std::function<void(const event::UsageEvent&)>& on_event) {
  PreloadStats stats;
  const auto t0 = SteadyClock::now();
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  const std::string db_path = options.data_dir + "/db";
  {
    auto store = store::Store::Open({.path = db_path});
    if (!store) return std::unexpected(store.error());
    auto agg = aggregate::Aggregator::Create(store->get());
    if (!agg) return std::unexpected(agg.error());

    BatchQueue queue(3);
    const size_t batch = std::max<size_t>(1, options.batch_size);
    std::thread producer([&] {
      gen::Generator generator(options.gen);
      gen::GeneratedLine line;
      std::vector<std::string> lines;
      lines.reserve(batch);
      while (generator.Next(&line)) {
        lines.push_back(line.json);
        if (lines.size() == batch) {
          queue.Push(std::move(lines));
          lines = {};
          lines.reserve(batch);
        }
      }
      if (!lines.empty()) queue.Push(std::move(lines));
      queue.Push({});
    });

    event::EventParser parser;
    std::vector<event::UsageEvent> pool(batch);
    std::vector<const event::UsageEvent*> ptrs;
    Status failure = Ok();
    for (;;) {
      std::vector<std::string> lines = queue.Pop();
      if (lines.empty()) break;
      if (!failure) continue;  // drain the producer
      ptrs.clear();
      for (const std::string& l : lines) {
        ++stats.lines;
        stats.json_bytes += l.size();
        event::UsageEvent* e = &pool[ptrs.size()];
        if (parser.ParseInto(l, e)) {
          if (on_event) on_event(*e);
          ptrs.push_back(e);
        } else {
          ++stats.rejected;
        }
      }
      aggregate::PartitionOffset off{"bench-preload", 0, stats.lines};
      const auto a0 = SteadyClock::now();
      auto st = (*agg)->Apply(ptrs, {&off, 1}, "bench-preload");
      stats.apply_seconds += SecondsSince(a0);
      if (!st) {
        failure = Fail(st.error().code, "apply: " + st.error().message);
        continue;
      }
      stats.applied += static_cast<int64_t>(st->applied);
    }
    producer.join();
    if (!failure) return std::unexpected(failure.error());
  }  // store closed
  stats.seconds = SecondsSince(t0);
  stats.db_bytes = DirectoryBytes(db_path);
  return stats;
}

Result<std::unique_ptr<TallydOnDir>> TallydOnDir::Start(const TallydOnDirOptions& o) {
  std::unique_ptr<TallydOnDir> t(new TallydOnDir());
  const std::string port_file = o.data_dir + "/port";
  std::error_code ec;
  std::filesystem::remove(port_file, ec);
  std::filesystem::remove(o.data_dir + "/broker.addr", ec);
  std::vector<std::string> argv = {o.binary,
                                   "--brokers",
                                   "embedded",
                                   "--data-dir",
                                   o.data_dir,
                                   "--listen",
                                   "127.0.0.1:0",
                                   "--port-file",
                                   port_file,
                                   "--keys",
                                   o.keys_path,
                                   "--cache-ttl",
                                   std::to_string(o.cache_ttl_s),
                                   "--server-timing"};
  if (!o.now.empty()) {
    argv.push_back("--now");
    argv.push_back(o.now);
  }
  for (const auto& a : o.extra_args) argv.push_back(a);
  const auto t0 = SteadyClock::now();
  auto proc = ChildProcess::Spawn(argv, o.log_path);
  if (!proc) return std::unexpected(proc.error());
  t->process_ = std::move(*proc);
  auto listen = WaitForFile(port_file, 300'000, t->process_.get());
  if (!listen) return std::unexpected(listen.error());
  auto endpoint = ConnectWhenReady(t->process_.get(), *listen, t0, 120);
  if (!endpoint) return std::unexpected(endpoint.error());
  t->host_ = std::move(endpoint->host);
  t->port_ = endpoint->port;
  t->client_ = std::move(endpoint->client);
  t->startup_s_ = SecondsSince(t0);
  return t;
}

TallydOnDir::~TallydOnDir() {
  client_.reset();
  if (process_) process_->Stop();
}

Result<http::testing::HttpReply> TallydOnDir::Get(const std::string& target,
                                                  const http::StringPairs& headers,
                                                  Sample* sample) {
  const auto t0 = SteadyClock::now();
  auto reply = client_->Send("GET", target, {}, headers);
  sample->client_ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
  sample->server_ms = reply ? ParseServerTiming(reply->Header("Server-Timing")) : -1;
  return reply;
}

uint64_t DirectoryBytes(const std::string& path) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(path, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  }
  return total;
}

}  // namespace tally::bench
