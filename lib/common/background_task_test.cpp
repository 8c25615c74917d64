#include "common/background_task.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <set>

namespace tally {
namespace {

TEST(BackgroundTaskTest, RunsTasksInOrderOnOneThread) {
  BackgroundTask<std::thread::id> worker;
  EXPECT_FALSE(worker.pending());
  std::set<std::thread::id> threads;
  for (int i = 0; i < 50; ++i) {
    worker.Start([] { return std::this_thread::get_id(); });
    EXPECT_TRUE(worker.pending());
    threads.insert(worker.Get());
    EXPECT_FALSE(worker.pending());
  }
  EXPECT_EQ(threads.size(), 1u);
  EXPECT_EQ(threads.count(std::this_thread::get_id()), 0u);
}

TEST(BackgroundTaskTest, DoneTellsWhetherGetWouldBlock) {
  BackgroundTask<int> worker;
  std::atomic<bool> go{false};
  worker.Start([&] {
    while (!go.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return 7;
  });
  EXPECT_FALSE(worker.done());
  go = true;
  while (!worker.done()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(worker.Get(), 7);
}

TEST(BackgroundTaskTest, DestructorWaitsForTheTaskInFlight) {
  std::atomic<bool> finished{false};
  {
    BackgroundTask<int> worker;
    worker.Start([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      finished = true;
      return 1;
    });
  }
  EXPECT_TRUE(finished.load());
}

}  // namespace
}  // namespace tally
