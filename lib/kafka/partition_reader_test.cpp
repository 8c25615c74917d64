#include "kafka/partition_reader.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "kafka/embedded_broker.h"
#include "kafka/producer.h"

namespace tally::kafka {
namespace {

using std::chrono::milliseconds;

constexpr const char* kTopic = "reader-test";

std::unique_ptr<EmbeddedBroker> StartBroker(int partitions) {
  auto broker = EmbeddedBroker::Start({.topics = {{kTopic, partitions}}});
  EXPECT_TRUE(broker) << broker.error().message;
  return broker ? std::move(*broker) : nullptr;
}

// Produces `n` messages "p<partition>-<i>" to each of `partitions`, keyed "k<i>", with a header.
void ProduceTo(const std::string& brokers, int partitions, int n) {
  ProducerOptions po;
  po.brokers = brokers;
  auto producer = Producer::Create(po);
  ASSERT_TRUE(producer) << producer.error().message;
  for (int p = 0; p < partitions; ++p) {
    for (int i = 0; i < n; ++i) {
      auto st = (*producer)->Produce(
          kTopic, "k" + std::to_string(i), "p" + std::to_string(p) + "-" + std::to_string(i),
          {{"h", "first"}, {"h", "v" + std::to_string(i)}, {"empty", ""}}, p);
      ASSERT_TRUE(st) << st.error().message;
    }
  }
  auto flushed = (*producer)->Flush(30000);
  ASSERT_TRUE(flushed) << flushed.error().message;
}

// Polls until `n` messages (partition ends skipped) or 30 s.
std::vector<Record> PollN(PartitionReader* reader, size_t n) {
  std::vector<Record> out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (out.size() < n && std::chrono::steady_clock::now() < deadline) {
    auto polled = reader->Poll(milliseconds(100));
    EXPECT_TRUE(polled) << polled.error().message;
    if (!polled || !*polled || (*polled)->partition_end()) continue;
    const Message& m = **polled;
    out.push_back(m.ToRecord());
    EXPECT_EQ(m.Header("h").value_or("-"), "v" + std::to_string(m.offset()));
    EXPECT_EQ(m.Header("empty").value_or("-"), "");
    EXPECT_FALSE(m.Header("absent").has_value());
  }
  return out;
}

TEST(PartitionReaderTest, RejectsBadOptions) {
  EXPECT_EQ(PartitionReader::Open({.topic = kTopic}).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(PartitionReader::Open({.brokers = "127.0.0.1:1"}).error().code,
            ErrorCode::kInvalidArgument);
  auto bad_property = PartitionReader::Open(
      {.brokers = "127.0.0.1:1", .topic = kTopic, .properties = {{"no.such.property", "1"}}});
  ASSERT_FALSE(bad_property);
  EXPECT_EQ(bad_property.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(bad_property.error().message.find("no.such.property"), std::string::npos);
  auto bad_offset =
      PartitionReader::Open({.brokers = "127.0.0.1:1", .topic = kTopic, .start = {{0, -3}}});
  ASSERT_FALSE(bad_offset);
  EXPECT_EQ(bad_offset.error().code, ErrorCode::kInvalidArgument);
}

TEST(PartitionReaderTest, ReadsChosenPartitionsFromChosenOffsets) {
  auto broker = StartBroker(3);
  ASSERT_TRUE(broker);
  ProduceTo(broker->bootstrap(), 3, 10);

  // Partition 0 from the beginning, partition 2 from offset 7, partition 1 not at all.
  auto reader = PartitionReader::Open(
      {.brokers = broker->bootstrap(), .topic = kTopic, .start = {{0, kBeginningOffset}, {2, 7}}});
  ASSERT_TRUE(reader) << reader.error().message;
  std::vector<Record> got = PollN(reader->get(), 13);
  ASSERT_EQ(got.size(), 13u);
  std::map<int32_t, std::vector<int64_t>> offsets;
  for (const Record& r : got) {
    offsets[r.partition].push_back(r.offset);
    EXPECT_EQ(r.topic, kTopic);
    EXPECT_EQ(r.value, "p" + std::to_string(r.partition) + "-" + std::to_string(r.offset));
    EXPECT_EQ(r.key, "k" + std::to_string(r.offset));
    ASSERT_EQ(r.headers.size(), 3u);
    EXPECT_EQ(r.headers[0], (std::pair<std::string, std::string>("h", "first")));
    EXPECT_EQ(r.Header("h"), "v" + std::to_string(r.offset));
    EXPECT_GT(r.timestamp_ms, 0);
  }
  EXPECT_EQ(offsets[0], (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(offsets[2], (std::vector<int64_t>{7, 8, 9}));
  EXPECT_FALSE(offsets.contains(1));

  auto wm = (*reader)->Watermarks(1, milliseconds(5000));
  ASSERT_TRUE(wm) << wm.error().message;
  EXPECT_EQ(*wm, (std::pair<int64_t, int64_t>(0, 10)));
  auto unknown = (*reader)->Watermarks(9, milliseconds(5000));
  EXPECT_FALSE(unknown);

  // Reassigned: partition 1 from its end sees only what is produced afterwards.
  ASSERT_TRUE((*reader)->Assign({{1, kEndOffset}}));
  auto nothing = (*reader)->Poll(milliseconds(500));
  ASSERT_TRUE(nothing);
  EXPECT_FALSE(nothing->has_value());
}

TEST(PartitionReaderTest, ReportsPartitionEnds) {
  auto broker = StartBroker(2);
  ASSERT_TRUE(broker);
  ProduceTo(broker->bootstrap(), 2, 3);
  auto reader = PartitionReader::Open({.brokers = broker->bootstrap(),
                                       .topic = kTopic,
                                       .start = {{0, kBeginningOffset}, {1, 1}},
                                       .report_partition_end = true});
  ASSERT_TRUE(reader) << reader.error().message;
  std::map<int32_t, int64_t> ends;
  int messages = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (ends.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    auto polled = (*reader)->Poll(milliseconds(100));
    ASSERT_TRUE(polled) << polled.error().message;
    if (!*polled) continue;
    if ((*polled)->partition_end()) {
      EXPECT_TRUE((*polled)->value().empty());
      EXPECT_TRUE((*polled)->Headers().empty());
      ends[(*polled)->partition()] = (*polled)->offset();
    } else {
      ++messages;
    }
  }
  EXPECT_EQ(messages, 5);
  EXPECT_EQ(ends, (std::map<int32_t, int64_t>{{0, 3}, {1, 3}}));
}

TEST(PartitionReaderTest, ReadTopicToEndCopiesWhatIsThere) {
  auto broker = StartBroker(4);
  ASSERT_TRUE(broker);
  ProduceTo(broker->bootstrap(), 3, 5);  // partition 3 stays empty

  auto records = ReadTopicToEnd(broker->bootstrap(), kTopic, 30000);
  ASSERT_TRUE(records) << records.error().message;
  ASSERT_EQ(records->size(), 15u);
  std::map<int32_t, int> per_partition;
  for (const Record& r : *records) {
    ++per_partition[r.partition];
    EXPECT_EQ(r.value, "p" + std::to_string(r.partition) + "-" + std::to_string(r.offset));
    EXPECT_EQ(r.Header("h"), "v" + std::to_string(r.offset));
    EXPECT_EQ(r.Header("absent"), "");
  }
  EXPECT_EQ(per_partition, (std::map<int32_t, int>{{0, 5}, {1, 5}, {2, 5}}));

  auto unknown = ReadTopicToEnd(broker->bootstrap(), "no-such-topic", 30000);
  ASSERT_TRUE(unknown) << unknown.error().message;
  EXPECT_TRUE(unknown->empty());
}

// The embedded broker (librdkafka 2.0.2's mock cluster) answers time lookups without searching
// by time, so only the shape of the answer is checked here: one offset per partition asked, -1
// where there is no message.
TEST(PartitionReaderTest, LooksUpOffsetsByTime) {
  auto broker = StartBroker(2);
  ASSERT_TRUE(broker);
  ProduceTo(broker->bootstrap(), 1, 4);  // partition 1 stays empty
  auto reader = PartitionReader::Open({.brokers = broker->bootstrap(), .topic = kTopic});
  ASSERT_TRUE(reader) << reader.error().message;
  auto offsets = (*reader)->OffsetsForTime({0, 1}, 0, milliseconds(5000));
  ASSERT_TRUE(offsets) << offsets.error().message;
  ASSERT_EQ(offsets->size(), 2u);
  EXPECT_GE(offsets->at(0), -1);
  EXPECT_LE(offsets->at(0), 4);
  EXPECT_EQ(offsets->at(1), -1);
}

TEST(PartitionReaderTest, ReadTopicToEndFailsWithoutABroker) {
  auto records = ReadTopicToEnd("127.0.0.1:1", kTopic, 500);
  ASSERT_FALSE(records);
  EXPECT_EQ(records.error().code, ErrorCode::kUnavailable);
}

TEST(BrokerAddressFileTest, ReadsTheFirstLineTrimmed) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("tally-addr-" + std::to_string(::getpid())))
          .string();
  std::filesystem::remove(path);

  auto missing = ReadBrokerAddressFile(path);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message.find("no broker address in " + path), std::string::npos);
  EXPECT_NE(missing.error().message.find("tally broker --addr-file"), std::string::npos);

  // Written while the reader waits.
  std::thread writer([&] {
    std::this_thread::sleep_for(milliseconds(100));
    std::ofstream(path) << "  127.0.0.1:9092\r\nignored\n";
  });
  auto waited = ReadBrokerAddressFile(path, milliseconds(10000));
  writer.join();
  ASSERT_TRUE(waited) << waited.error().message;
  EXPECT_EQ(*waited, "127.0.0.1:9092");

  // An empty file is no address; give_up ends the wait at once.
  std::ofstream(path) << "\n";
  const auto start = std::chrono::steady_clock::now();
  auto empty = ReadBrokerAddressFile(path, milliseconds(10000), [] { return true; });
  EXPECT_FALSE(empty);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace tally::kafka
