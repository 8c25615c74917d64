#pragma once
// Names of the Kafka headers on dead letters: the messages tallyd could not ingest, which it
// copies (payload and key unchanged) to the dead-letter topic (`<topic>.dlq`,
// "usage-events.dlq"), and which `tally dlq` lists and redrives. Writers and readers share these
// names so that they cannot drift apart. Header values are UTF-8 text.

#include <string_view>

namespace tally::kafka {

// Why tallyd refused the message, as a sentence ("data.tokens: must be an integer", "late event
// ...", "organization mismatch ..."). Written by tallyd on every dead letter.
inline constexpr std::string_view kDeadLetterReasonHeader = "tally-dlq-reason";

// The topic the message was read from ("usage-events").
inline constexpr std::string_view kDeadLetterSourceTopicHeader = "tally-source-topic";

// Its partition in that topic, in decimal ("3").
inline constexpr std::string_view kDeadLetterSourcePartitionHeader = "tally-source-partition";

// Its offset in that partition, in decimal ("1234").
inline constexpr std::string_view kDeadLetterSourceOffsetHeader = "tally-source-offset";

// Written by `tally dlq redrive` on each message it produces again to the main topic: the dead
// letter it came from as "<dead-letter topic>:<partition>:<offset>" ("usage-events.dlq:0:12").
inline constexpr std::string_view kRedriveOfHeader = "tally-redrive-of";

}  // namespace tally::kafka
