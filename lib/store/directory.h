#pragma once
// In-memory directory of the dictionary-encoded users and agents, with the labels that request
// analytics shows: a user's latest email within an organization (from that organization's events
// only; its id when none is known there) and an agent's latest name (its id when none is known),
// plus an index from agent name to agents.
//
//   auto dir = tally::store::Directory::Load(*store);       // once at start
//   aggregator->set_directory(dir->get());                   // kept current after every batch
//   {
//     tally::store::Directory::Reader r(**dir);              // shared lock for one request
//     std::vector<uint32_t> scope = r.Organizations({"org_7"});
//     std::string_view label = r.UserLabel(scope, 17);
//     const std::vector<uint32_t>* ids = r.AgentsNamed("Support Agent");
//   }
//
// The labels mirror the "tally.fields" records (UserLabelKey / AgentLabelKey in codec.h): the
// value with the latest event time wins, ties go to the later update, so the directory and the
// store agree after a restart. Reading every label per request from RocksDB would cost one
// lookup per user listed; this keeps it a vector index.
//
// Thread-safety: all methods are thread-safe; a Reader holds a shared lock while it lives.

#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.h"

namespace tally::store {

class Store;

class Directory {
 public:
  Directory() = default;
  // Reads every user and agent dictionary entry and label. kUnavailable/kDataLoss from the store.
  static Result<std::unique_ptr<Directory>> Load(const Store& store);

  // One pending change, applied by Apply() after the batch that wrote it is stored.
  struct Update {
    enum class Kind : uint8_t { kNewUser, kNewAgent, kUserEmail, kAgentName } kind;
    uint32_t index = 0;
    int64_t time_ms = 0;
    std::string a;  // user id / workspace id / email / name
    std::string b;  // agent id (kNewAgent) / organization (kUserEmail)
  };
  void Apply(const std::vector<Update>& updates);

  struct Email {
    std::string_view email;
    int64_t time_ms = 0;
    std::string_view organization;
  };

  class Reader {
   public:
    explicit Reader(const Directory& d) : d_(d), lock_(d.mu_) {}
    // The directory's ids of the organizations in `names` that it knows, sorted: the scope
    // argument of UserLabel. Unknown names are left out.
    std::vector<uint32_t> Organizations(const std::vector<std::string>& names) const;
    // The user's latest email among the events of the organizations in `scope` (from
    // Organizations()), or its id when none of them carried one; "" for an unknown index. Across
    // organizations the latest event time wins (ties: the greater organization name).
    std::string_view UserLabel(const std::vector<uint32_t>& scope, uint32_t index) const;
    // The email UserLabel shows, with the time of its event and the organization (scope name)
    // it came from; nullopt when none is known in `scope` (or for an unknown index). Views are
    // valid while the reader lives.
    std::optional<Email> UserEmail(const std::vector<uint32_t>& scope, uint32_t index) const;
    // fn(index, email) for every user with an email in `scope` (UserEmail), in index order.
    template <typename Fn>
    void ForEachUserEmail(const std::vector<uint32_t>& scope, Fn fn) const {
      for (uint32_t i = 0; i < d_.users_.size(); ++i) {
        if (auto email = UserEmail(scope, i)) fn(i, *email);
      }
    }
    // The user's id; "" for an unknown index.
    std::string_view UserId(uint32_t index) const;
    // The agent's latest name, or its id; "" for an unknown index.
    std::string_view AgentName(uint32_t index) const;
    // (workspace id, agent id) of an agent index; empty views for an unknown index.
    std::pair<std::string_view, std::string_view> AgentRef(uint32_t index) const;
    // Agents whose current name equals `name` exactly, in increasing index order; null if none.
    const std::vector<uint32_t>* AgentsNamed(std::string_view name) const;
    size_t user_count() const { return d_.users_.size(); }
    size_t agent_count() const { return d_.agents_.size(); }

   private:
    const Directory& d_;
    std::shared_lock<std::shared_mutex> lock_;
  };

 private:
  struct Label {
    std::string value;
    int64_t time_ms = INT64_MIN;
    bool set = false;
  };
  struct UserEntry {
    std::string id;
    // (organization id, latest email in it); a user is usually seen in one organization.
    std::vector<std::pair<uint32_t, Label>> emails;
  };
  struct AgentEntry {
    std::string workspace_id, agent_id;
    Label name;
  };
  void ApplyLocked(const Update& u);
  void SetAgentName(uint32_t index, std::string_view name, int64_t time_ms);
  void Unindex(uint32_t index);
  void Index(uint32_t index);

  mutable std::shared_mutex mu_;
  std::vector<UserEntry> users_;
  std::vector<AgentEntry> agents_;
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  std::unordered_map<std::string, std::vector<uint32_t>, Hash, std::equal_to<>> by_name_;
  std::unordered_map<std::string, uint32_t, Hash, std::equal_to<>> org_ids_;
  std::vector<std::string> org_names_;  // by organization id
};

}  // namespace tally::store
