#pragma once
// A small Prometheus metrics registry (text exposition format 0.0.4).
//
//   tally::MetricsRegistry registry;
//   tally::Counter* consumed = registry.GetCounter("tally_events_consumed_total",
//                                                  "Events read from Kafka.");
//   consumed->Add(batch.size());
//   tally::Histogram* lat = registry.GetHistogram("tally_http_request_seconds", "...",
//                                                 {{"route", "/metrics"}},
//                                                 tally::Histogram::LatencyBuckets());
//   lat->Observe(0.0012);
//   std::string body = registry.RenderPrometheus();
//
// Thread-safety: every method is thread-safe. Metric objects live as long as the registry;
// callers keep the returned pointers and update them lock-free on hot paths.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace tally {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void Add(double v = 1) {
    double cur = value_.load(std::memory_order_relaxed);
    while (!value_.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
    }
  }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double v);
  // Default buckets for latencies in seconds, 50 µs .. 10 s.
  static std::vector<double> LatencyBuckets();

  struct Snapshot {
    std::vector<double> upper_bounds;
    std::vector<uint64_t> cumulative;  // per bound, then +Inf
    double sum;
    uint64_t count;
  };
  Snapshot Take() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // bounds_.size() + 1 (the +Inf bucket)
  std::atomic<double> sum_{0};
};

class MetricsRegistry {
 public:
  // Returns the metric with this name and labels, creating it on first use. The `help` text of
  // the first call for a name wins. Never returns null.
  Counter* GetCounter(const std::string& name, const std::string& help, const Labels& labels = {});
  Gauge* GetGauge(const std::string& name, const std::string& help, const Labels& labels = {});
  Histogram* GetHistogram(const std::string& name, const std::string& help, const Labels& labels,
                          const std::vector<double>& upper_bounds);

  // The whole registry in Prometheus text format.
  std::string RenderPrometheus() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Family {
    Type type;
    std::string help;
    std::map<std::string, std::unique_ptr<Counter>> counters;  // key: rendered label set
    std::map<std::string, std::unique_ptr<Gauge>> gauges;
    std::map<std::string, std::unique_ptr<Histogram>> histograms;
  };
  Family& FamilyFor(const std::string& name, const std::string& help, Type type);

  mutable std::mutex mu_;
  std::map<std::string, Family> families_;
};

// Renders {a="x",b="y"} with Prometheus escaping; "" for no labels.
std::string RenderLabels(const Labels& labels);

}  // namespace tally
