#pragma once
// A local copy of the messages ingest consumed but has not persisted yet, for brokers that may
// drop them first (the embedded broker keeps only the newest 5 MiB of a partition).
//
//   auto journal = tally::ingest::Journal::Open(data_dir + "/journal", cluster_id, topic);
//   auto old = (*journal)->ReadAll();          // at start: what the last run staged, in order
//   ... apply old->records whose offsets the store does not hold yet, persist, then:
//   (*journal)->Clear();
//   (*journal)->Append(records);              // per batch, before it is staged
//   uint64_t segment = (*journal)->Roll();    // the batch just appended will be persisted
//   ... once that persist is done: (*journal)->DropThrough(segment);
//
// With a journal, the store's open state may hold more than the broker keeps: a crash loses
// only what the journal can give back, so ingest persists every few seconds instead of every
// megabyte. The journal is a directory of segment files (`<20-digit sequence>.journal`). Each
// starts with a header naming the cluster id and topic its records belong to; each record
// holds a message's partition, offset, key and payload, framed by its length and a checksum.
// Appends go to page cache with one write() per batch and are never synced, like the store's
// own write-ahead log: a killed process loses nothing, a power cut may lose the tail (then a
// restart consumes those messages again if the broker still has them).
//
// Thread-safety: none; one thread (the consumer's) uses a journal.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace tally::ingest {

// One consumed message. Views: valid as long as their source (the caller's message, or the
// JournalContents they were read into).
struct JournalRecord {
  int32_t partition = 0;
  int64_t offset = 0;
  std::string_view key;
  std::string_view payload;
};

// What ReadAll found.
struct JournalContents {
  std::vector<std::string> buffers;    // the segments' bytes; records point into them
  std::vector<JournalRecord> records;  // in append order
  // Segments whose header names another cluster or topic (their records are not returned).
  size_t foreign_segments = 0;
  // Bytes after the last whole record of a segment (a write cut short), not returned.
  size_t torn_bytes = 0;
};

class Journal {
 public:
  // Opens the journal in `dir` (created if missing) for messages of `topic` on the cluster
  // `cluster_id`. Existing segments are kept for ReadAll. kUnavailable if the directory cannot be
  // created or listed.
  static Result<std::unique_ptr<Journal>> Open(const std::string& dir, std::string cluster_id,
                                               std::string topic);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Every record of every segment of this cluster and topic, in append order; a segment's
  // torn tail is skipped. kUnavailable / kDataLoss on I/O errors.
  Result<JournalContents> ReadAll() const;

  // Appends `records` to the current segment (starting one if none is open) with one write.
  // kUnavailable on I/O errors (the segment may then end in a torn record, which ReadAll skips;
  // the next Append starts a new segment).
  Status Append(std::span<const JournalRecord> records);

  // Ends the current segment: later appends go to a new one. Returns the sequence number of the
  // segment ended (0 when nothing was appended since the last roll: nothing to drop).
  uint64_t Roll();

  // Deletes every segment with a sequence number up to `segment` (Roll's result). kUnavailable
  // on I/O errors.
  Status DropThrough(uint64_t segment);

  // Ends the current segment and deletes them all. kUnavailable on I/O errors.
  Status Clear();

  // Bytes in the segments not dropped yet (those this process wrote, and those it found).
  uint64_t bytes() const { return bytes_; }

 private:
  Journal(std::string dir, std::string cluster_id, std::string topic)
      : dir_(std::move(dir)), cluster_id_(std::move(cluster_id)), topic_(std::move(topic)) {}
  std::string SegmentPath(uint64_t sequence) const;
  // Sequence numbers of the segment files present, ascending, with their sizes.
  Result<std::vector<std::pair<uint64_t, uint64_t>>> ListSegments() const;
  void CloseSegment();

  std::string dir_;
  std::string cluster_id_;
  std::string topic_;
  int fd_ = -1;                 // the segment being appended to, or -1
  uint64_t current_ = 0;        // its sequence number
  uint64_t next_sequence_ = 1;  // of the next segment to start
  uint64_t bytes_ = 0;
  std::string buffer_;  // one append's bytes, reused
};

}  // namespace tally::ingest
