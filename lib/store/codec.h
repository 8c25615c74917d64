#pragma once
// Every RocksDB key and value encoding of tally, one header per column family (this header
// includes them all):
//
//   varint.h          varints, length-prefixed strings, ordered and fixed-width integers
//   counters_codec.h  "counters", "bitmaps" (scoped keys) and "userpacks": Counters, user packs
//   record_codec.h    "records": Record, the field table (merge rule per field id), record keys
//   slice_codec.h     "requests": request-analytics slices and their keys
//   dict_codec.h      "dict": user, agent and pair dictionaries
//   dedupe_codec.h    "dedupe": dedupe keys and values
//   meta_codec.h      "default": offsets, schema version, layouts, partition index, key ranges
//
//   std::string key;
//   tally::store::CounterKey(tally::store::Scope::kUser, "ws1", tally::Granularity::kDay, day,
//                            "user42", &key);
//   tally::store::Counters c;
//   c.i[tally::store::Counters::CountField(kind, action)] += 1;
//   std::string value = tally::store::EncodeCounters(c);
//
// Keys are binary: a one-byte tag (internal/codec_common.h lists them all), then components.
// Strings are length-prefixed (varint length + bytes), so no user string can ever be confused
// with a key separator; integers are fixed-width big-endian with the sign bit flipped, so keys
// sort in numeric order and prefix scans over (scope, granularity, bucket) work.
//
// Decoders never fail on stored data: malformed input decodes to an empty value and the
// function reports false, so that merge operators can always produce a result.

#include "store/counters_codec.h"
#include "store/dedupe_codec.h"
#include "store/dict_codec.h"
#include "store/meta_codec.h"
#include "store/record_codec.h"
#include "store/slice_codec.h"
#include "store/varint.h"
