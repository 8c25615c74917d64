#include "store/dict_codec.h"

#include "store/internal/codec_common.h"
#include "store/varint.h"

namespace tally::store {

using internal::GetBigEndian32;
using internal::IndexKey;
using internal::kTagAgentDict;
using internal::kTagAgentNext;
using internal::kTagAgentReverse;
using internal::kTagDict;
using internal::kTagDictNext;
using internal::kTagDictReverse;
using internal::kTagPairDict;
using internal::kTagPairNext;
using internal::PutBigEndian32;

void UserDictKey(std::string_view user_id, std::string* out) {
  out->clear();
  out->push_back(kTagDict);
  PutLengthPrefixed(out, user_id);
}

void UserDictReverseKey(uint32_t index, std::string* out) {
  out->clear();
  out->push_back(kTagDictReverse);
  PutOrderedInt32(out, static_cast<int32_t>(index ^ 0x80000000u));
}

std::string UserDictNextKey() { return std::string(1, kTagDictNext); }

void AgentDictKey(std::string_view workspace_id, std::string_view agent_id, std::string* out) {
  out->clear();
  out->push_back(kTagAgentDict);
  PutLengthPrefixed(out, workspace_id);
  PutLengthPrefixed(out, agent_id);
}
void AgentDictReverseKey(uint32_t index, std::string* out) {
  IndexKey(kTagAgentReverse, index, out);
}
std::string AgentDictReversePrefix() { return std::string(1, kTagAgentReverse); }
std::string AgentDictNextKey() { return std::string(1, kTagAgentNext); }

std::string EncodeAgentRef(std::string_view workspace_id, std::string_view agent_id) {
  std::string out;
  EncodeAgentRef(workspace_id, agent_id, &out);
  return out;
}

void EncodeAgentRef(std::string_view workspace_id, std::string_view agent_id, std::string* out) {
  out->clear();
  PutLengthPrefixed(out, workspace_id);
  PutLengthPrefixed(out, agent_id);
}

bool DecodeAgentRef(std::string_view in, std::string_view* workspace_id,
                    std::string_view* agent_id) {
  return GetLengthPrefixed(&in, workspace_id) && GetLengthPrefixed(&in, agent_id) && in.empty();
}

void PairDictKey(uint32_t agent_index, uint32_t user_index, std::string* out) {
  out->clear();
  out->push_back(kTagPairDict);
  PutBigEndian32(out, agent_index);
  PutBigEndian32(out, user_index);
}
std::string PairDictNextKey() { return std::string(1, kTagPairNext); }
std::string PairDictPrefix() { return std::string(1, kTagPairDict); }

bool DecodePairDictKey(std::string_view key, uint32_t* agent_index, uint32_t* user_index) {
  if (key.size() != 9 || key[0] != kTagPairDict) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(key.data() + 1);
  auto be32 = [](const unsigned char* b) {
    return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
  };
  *agent_index = be32(p);
  *user_index = be32(p + 4);
  return true;
}

std::string UserDictReversePrefix() { return std::string(1, kTagDictReverse); }

bool DecodeDictReverseKey(std::string_view key, uint32_t* index) {
  if (key.size() != 5) return false;
  key.remove_prefix(1);
  // User reverse keys use PutOrderedInt32(index ^ 0x80000000), which is plain big-endian.
  return GetBigEndian32(&key, index);
}

}  // namespace tally::store
