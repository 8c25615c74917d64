#pragma once
// For tests only: decoders production code never needs, to check what the codecs wrote.

#include <cstdint>
#include <string>
#include <string_view>

#include "common/calendar.h"
#include "event/usage_event.h"

namespace tally::store::testing {

// Decodes the scope id at the end of a key found under CounterBucketPrefix (counters_codec.h):
// `rest` is the key with the prefix removed. False if malformed.
bool DecodeScopeIdUser(std::string_view rest, uint32_t* user_index);
bool DecodeScopeIdEntity(std::string_view rest, event::EntityKind* kind,
                         std::string_view* entity_id);
// The same requests key (slice_codec.h) at another (granularity, bucket). False if `key` is too
// short.
bool RequestsRebucket(std::string_view key, Granularity g, int32_t bucket, std::string* out);

}  // namespace tally::store::testing
