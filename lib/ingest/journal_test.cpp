#include "ingest/journal.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace tally::ingest {
namespace {

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() /
            ("tally_journal_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Journal> OpenJournal(const std::string& cluster = "c1",
                                       const std::string& topic = "usage-events") {
    auto j = Journal::Open(dir_, cluster, topic);
    EXPECT_TRUE(j.has_value()) << j.error().message;
    return std::move(*j);
  }
  std::vector<std::string> Segments() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(dir_)) {
      out.push_back(e.path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  std::string dir_;
};

// The records as (partition, offset, key, payload) strings, for comparisons.
std::vector<std::string> Flatten(const std::vector<JournalRecord>& records) {
  std::vector<std::string> out;
  for (const auto& r : records) {
    out.push_back(std::to_string(r.partition) + "/" + std::to_string(r.offset) + "/" +
                  std::string(r.key) + "/" + std::string(r.payload));
  }
  return out;
}

TEST_F(JournalTest, ReadsBackWhatWasAppendedInOrderAcrossSegments) {
  std::vector<std::string> expected;
  {
    auto j = OpenJournal();
    std::vector<JournalRecord> batch = {{3, 10, "ws-a", R"({"id":"1"})"},
                                        {0, 7, "", std::string_view("bin\0ary", 7)}};
    ASSERT_TRUE(j->Append(batch));
    EXPECT_GT(j->Roll(), 0u);
    std::string big(100000, 'x');
    std::vector<JournalRecord> second = {{3, 11, "ws-a", big}, {1, 0, "k", ""}};
    ASSERT_TRUE(j->Append(second));
    expected = {"3/10/ws-a/{\"id\":\"1\"}", "0/7//" + std::string("bin\0ary", 7),
                "3/11/ws-a/" + big, "1/0/k/"};
  }
  auto j = OpenJournal();
  auto contents = j->ReadAll();
  ASSERT_TRUE(contents) << contents.error().message;
  EXPECT_EQ(Flatten(contents->records), expected);
  EXPECT_EQ(contents->torn_bytes, 0u);
  EXPECT_GT(j->bytes(), 100000u);
}

TEST_F(JournalTest, DropThroughDeletesOnlyTheRolledSegments) {
  auto j = OpenJournal();
  std::vector<JournalRecord> a = {{0, 1, "", "a"}};
  std::vector<JournalRecord> b = {{0, 2, "", "b"}};
  ASSERT_TRUE(j->Append(a));
  const uint64_t first = j->Roll();
  ASSERT_TRUE(j->Append(b));  // the next batch, appended before the persist of `a` is done
  ASSERT_TRUE(j->DropThrough(first));
  auto contents = j->ReadAll();
  ASSERT_TRUE(contents);
  EXPECT_EQ(Flatten(contents->records), std::vector<std::string>{"0/2//b"});
  EXPECT_EQ(j->Roll(), first + 1);
  EXPECT_EQ(j->Roll(), 0u);        // nothing appended since: nothing to drop
  EXPECT_TRUE(j->DropThrough(0));  // a no-op
  ASSERT_TRUE(j->Clear());
  EXPECT_TRUE(Segments().empty());
  EXPECT_EQ(j->bytes(), 0u);
}

TEST_F(JournalTest, ATornTailIsSkippedAndTheRestKept) {
  {
    auto j = OpenJournal();
    std::vector<JournalRecord> batch = {{0, 1, "", "first"}, {0, 2, "", "second"}};
    ASSERT_TRUE(j->Append(batch));
  }
  const std::string path = Segments().at(0);
  const auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size - 3);  // the last record's end never reached disk
  auto j = OpenJournal();
  auto contents = j->ReadAll();
  ASSERT_TRUE(contents);
  EXPECT_EQ(Flatten(contents->records), std::vector<std::string>{"0/1//first"});
  EXPECT_GT(contents->torn_bytes, 0u);
}

TEST_F(JournalTest, ACorruptRecordEndsItsSegment) {
  {
    auto j = OpenJournal();
    std::vector<JournalRecord> batch = {{0, 1, "", "first"}, {0, 2, "", "second"}};
    ASSERT_TRUE(j->Append(batch));
    j->Roll();
    std::vector<JournalRecord> next = {{0, 3, "", "third"}};
    ASSERT_TRUE(j->Append(next));
  }
  const std::string path = Segments().at(0);
  std::string data;
  {
    std::ifstream in(path, std::ios::binary);
    data.assign(std::istreambuf_iterator<char>(in), {});
  }
  data[data.size() - 2] ^= 0x20;  // "second" -> "secoNd": its checksum no longer matches
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << data;
  }
  auto j = OpenJournal();
  auto contents = j->ReadAll();
  ASSERT_TRUE(contents);
  EXPECT_EQ(Flatten(contents->records), (std::vector<std::string>{"0/1//first", "0/3//third"}));
}

TEST_F(JournalTest, SegmentsOfAnotherClusterOrTopicAreNotReturned) {
  {
    auto j = OpenJournal("old-cluster");
    std::vector<JournalRecord> batch = {{0, 1, "", "old"}};
    ASSERT_TRUE(j->Append(batch));
  }
  {
    auto j = OpenJournal("c1", "other-topic");
    std::vector<JournalRecord> batch = {{0, 1, "", "other"}};
    ASSERT_TRUE(j->Append(batch));
  }
  auto j = OpenJournal();
  auto contents = j->ReadAll();
  ASSERT_TRUE(contents);
  EXPECT_TRUE(contents->records.empty());
  EXPECT_EQ(contents->foreign_segments, 2u);
  // New segments never reuse an existing one's name.
  std::vector<JournalRecord> batch = {{0, 5, "", "new"}};
  ASSERT_TRUE(j->Append(batch));
  EXPECT_EQ(Segments().size(), 3u);
  ASSERT_TRUE(j->Clear());
  EXPECT_TRUE(Segments().empty());
}

TEST_F(JournalTest, AnIdleJournalWritesNothing) {
  auto j = OpenJournal();
  ASSERT_TRUE(j->Append({}));
  EXPECT_EQ(j->Roll(), 0u);
  EXPECT_TRUE(Segments().empty());
}

}  // namespace
}  // namespace tally::ingest
