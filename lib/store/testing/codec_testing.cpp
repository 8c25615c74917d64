#include "store/testing/codec_testing.h"

#include "store/varint.h"

namespace tally::store::testing {

bool DecodeScopeIdUser(std::string_view rest, uint32_t* user_index) {
  int32_t v;
  if (!GetOrderedInt32(&rest, &v) || !rest.empty()) return false;
  *user_index = static_cast<uint32_t>(v) ^ 0x80000000u;
  return true;
}

bool DecodeScopeIdEntity(std::string_view rest, event::EntityKind* kind,
                         std::string_view* entity_id) {
  if (rest.empty()) return false;
  uint8_t k = static_cast<uint8_t>(rest.front());
  if (k >= event::kEntityKindCount) return false;
  rest.remove_prefix(1);
  *kind = static_cast<event::EntityKind>(k);
  return GetLengthPrefixed(&rest, entity_id) && rest.empty();
}

bool RequestsRebucket(std::string_view key, Granularity g, int32_t bucket, std::string* out) {
  if (key.size() < 8) return false;
  out->assign(key.substr(0, key.size() - 5));
  out->push_back(static_cast<char>(g));
  PutOrderedInt32(out, bucket);
  return true;
}

}  // namespace tally::store::testing
