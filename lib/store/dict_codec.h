#pragma once
// Dictionaries: the keys and values of the "dict" column family (user ids, agents and (agent, user)
// pairs to dense uint32 indexes and back, and each dictionary's next free index). Values are
// EncodeUint32 (varint.h). Pure functions, thread-safe.

#include <cstdint>
#include <string>
#include <string_view>

namespace tally::store {

// ---------------------------------------------------------------------------------------------
// Dictionary (column family "dict"): user id -> dense uint32, and the next free id.

void UserDictKey(std::string_view user_id, std::string* out);
void UserDictReverseKey(uint32_t index, std::string* out);
std::string UserDictNextKey();

// Agent dictionary (column family "dict"): (workspace, agent id) <-> dense uint32.
void AgentDictKey(std::string_view workspace_id, std::string_view agent_id, std::string* out);
void AgentDictReverseKey(uint32_t index, std::string* out);
std::string AgentDictReversePrefix();
std::string AgentDictNextKey();
std::string EncodeAgentRef(std::string_view workspace_id, std::string_view agent_id);
void EncodeAgentRef(std::string_view workspace_id, std::string_view agent_id, std::string* out);
bool DecodeAgentRef(std::string_view in, std::string_view* workspace_id,
                    std::string_view* agent_id);
// Pair dictionary: (agent index, user index) <-> dense uint32.
void PairDictKey(uint32_t agent_index, uint32_t user_index, std::string* out);
// Prefix of every PairDictKey, and the decoding of one (false if malformed).
std::string PairDictPrefix();
bool DecodePairDictKey(std::string_view key, uint32_t* agent_index, uint32_t* user_index);
std::string PairDictNextKey();
// User dictionary reverse rows, for loading every user: prefix and index decoding.
std::string UserDictReversePrefix();
// The index of a key under UserDictReversePrefix / AgentDictReversePrefix.
bool DecodeDictReverseKey(std::string_view key, uint32_t* index);

}  // namespace tally::store
