#include "store/dedupe_codec.h"

#include "store/internal/codec_common.h"
#include "store/varint.h"

namespace tally::store {

using internal::kTagDedupe;
using internal::kTagWorkspaceDedupe;

void DedupeKey(std::string_view source, std::string_view id, std::string* out) {
  out->clear();
  out->push_back(kTagDedupe);
  PutLengthPrefixed(out, source);
  PutLengthPrefixed(out, id);
}

void WorkspaceDedupeKey(std::string_view workspace_id, std::string_view source, std::string_view id,
                        std::string* out) {
  out->clear();
  out->push_back(kTagWorkspaceDedupe);
  PutLengthPrefixed(out, workspace_id);
  PutLengthPrefixed(out, source);
  PutLengthPrefixed(out, id);
}

std::string EncodeDedupeValue(int64_t time_ms, int64_t inserted_ms) {
  std::string out;
  AppendDedupeValue(time_ms, inserted_ms, &out);
  return out;
}

void AppendDedupeValue(int64_t time_ms, int64_t inserted_ms, std::string* out) {
  PutFixed64(out, static_cast<uint64_t>(time_ms));
  PutFixed64(out, static_cast<uint64_t>(inserted_ms));
}

bool DecodeDedupeValue(std::string_view in, int64_t* time_ms, int64_t* inserted_ms) {
  uint64_t v, w = 0;
  if (!GetFixed64(&in, &v)) return false;
  if (!in.empty() && !GetFixed64(&in, &w)) return false;
  *time_ms = static_cast<int64_t>(v);
  *inserted_ms = static_cast<int64_t>(w);
  return true;
}

}  // namespace tally::store
