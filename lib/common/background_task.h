#pragma once
// One long-lived thread that runs one task at a time, for double-buffered pipelines (one thread
// prepares the next batch while this one stores the previous). Starting a thread per batch
// (std::async) costs a thread start and fresh stack pages every batch: a steady tax on a quiet
// stream.
//
//   tally::BackgroundTask<int> worker;
//   worker.Start([] { return Store(batch); });
//   ...                                   // prepare the next batch meanwhile
//   int stored = worker.Get();            // waits for it
//
// Thread-safety: Start, Get, pending and done are called by one owning thread. The destructor
// waits for the task in flight (its result is dropped).

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

namespace tally {

template <typename T>
class BackgroundTask {
 public:
  BackgroundTask() = default;
  BackgroundTask(const BackgroundTask&) = delete;
  BackgroundTask& operator=(const BackgroundTask&) = delete;
  ~BackgroundTask() {
    {
      std::lock_guard lock(mu_);
      quit_ = true;  // the worker still runs a task already started
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  // Runs fn on the worker thread. Precondition: !pending() (the previous result was taken).
  void Start(std::function<T()> fn) {
    if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
    {
      std::lock_guard lock(mu_);
      task_ = std::move(fn);
      result_.reset();
      pending_ = true;
    }
    cv_.notify_all();
  }
  // A task was started and its result not yet taken.
  bool pending() const { return pending_; }
  // pending() and the task has finished (Get will not block).
  bool done() const {
    std::lock_guard lock(mu_);
    return pending_ && result_.has_value();
  }
  // Waits for the task started last and returns its result. Precondition: pending().
  T Get() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return result_.has_value(); });
    pending_ = false;
    T out = std::move(*result_);
    result_.reset();
    return out;
  }

 private:
  void Loop() {
    std::unique_lock lock(mu_);
    while (true) {
      cv_.wait(lock, [&] { return quit_ || task_; });
      if (!task_) return;  // quit_ with nothing to run
      std::function<T()> fn = std::exchange(task_, nullptr);
      lock.unlock();
      T r = fn();
      lock.lock();
      result_.emplace(std::move(r));
      cv_.notify_all();
    }
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::function<T()> task_;  // set from Start until the worker picks it up
  std::optional<T> result_;
  bool pending_ = false;  // owner thread only
  bool quit_ = false;
  std::thread thread_;
};

}  // namespace tally
