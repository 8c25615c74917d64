#pragma once
// The routing table of a tallyd group: which instance owns each partition of the events topic,
// and in which partitions each workspace's and organization's events were consumed. It is
// built from the records of the group's cluster topic (membership.h publishes and reads them),
// never from an assumed partitioner.
//
//   tally::cluster::RoutingTable table;
//   for (const auto& r : records) table.Apply(r.key, r.value, r.offset);  // in offset order
//   LocalState self{.instance_id = "tallyd-a", .owned = {0, 1}, .serving = {0, 1}};
//   Route route = table.RouteWorkspace("8360bf61-...", self);
//   if (route.kind == Route::kForward) { ... send the request to route.url ... }
//
// Records (key -> value, both UTF-8; values are JSON objects):
//   "member/<instance id>" ->
//       {"instance_id","url","owned":[p...],"serving":[p...],"standby":[p...],"time_ms"}
//       what an instance owns (assigned by the consumer group), serves (owned and caught up
//       with the log) and keeps warm copies of (StandbyPartitions; "standby" may be absent:
//       none). An empty "owned" list is a member that left.
//   "scope/<partition>/<workspace>/<organization>" ->
//       {"partition":p,"workspace":"...","organization":"..."}: events of that workspace (and
//       organization, "" when none) were consumed from that partition.
// The topic has one partition (records are produced to partition 0), so record offsets order
// every claim: a partition belongs to the member whose latest record claiming it is the newest.
//
// Thread-compatible: callers synchronize (Membership holds it under a mutex).

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/json_writer.h"

namespace tally::cluster {

// What an instance publishes about itself.
struct MemberInfo {
  std::string instance_id = {};
  std::string url = {};               // advertised base URL, "http://host:port"
  std::vector<int32_t> owned;         // partitions assigned to it, sorted
  std::vector<int32_t> serving;       // owned partitions whose state has caught up, sorted
  std::vector<int32_t> standby = {};  // partitions it keeps warm copies of, sorted
  int64_t time_ms = 0;                // wall clock of the publication (for operators)
  int64_t offset = -1;                // offset of the record in the cluster topic (set by Apply)
};

// This instance as its own consumer sees it now (fresher than its published record).
struct LocalState {
  std::string instance_id = {};
  std::vector<int32_t> owned;         // sorted
  std::vector<int32_t> serving;       // sorted
  std::vector<int32_t> standby = {};  // sorted: partitions it keeps warm copies of
};

// Where a request for one scope is answered.
struct Route {
  enum Kind {
    kLocal,        // by this instance's own views
    kForward,      // by the instance at `url`
    kUnavailable,  // by nobody right now: answer 503 with Retry-After; `reason` says why
  };
  Kind kind = kLocal;
  std::string url = {};
  std::string instance_id = {};  // the owner, for kForward
  std::string reason = {};
};

// Record keys and values (see the top of the file).
std::string MemberKey(std::string_view instance_id);
std::string EncodeMember(const MemberInfo& member);
std::string ScopeKey(int32_t partition, std::string_view workspace, std::string_view organization);
// The same into `out` (its capacity reused: no allocation once it is large enough).
void ScopeKey(int32_t partition, std::string_view workspace, std::string_view organization,
              std::string* out);
std::string EncodeScope(int32_t partition, std::string_view workspace,
                        std::string_view organization);

class RoutingTable {
 public:
  // Applies one record read from the cluster topic at `offset`; records must be applied in
  // offset order. Returns false (and changes nothing) for a record it cannot decode: a key
  // without a known prefix, a value that is not the JSON described above.
  bool Apply(std::string_view key, std::string_view value, int64_t offset);

  // Records that events of `workspace` (naming `organization`, "" when none) were consumed
  // from `partition`, as a scope record does (Apply). `workspace` must not be empty.
  void AddScope(int32_t partition, std::string_view workspace, std::string_view organization);

  // The member owning `partition`: of the members whose latest record lists it as owned, the
  // one whose record is the newest. nullptr when no member claims it.
  const MemberInfo* OwnerOf(int32_t partition) const;

  // Partitions in which events of the workspace (organization) were consumed; empty if none.
  const std::set<int32_t>& PartitionsOfWorkspace(std::string_view workspace) const;
  const std::set<int32_t>& PartitionsOfOrganization(std::string_view organization) const;
  // Workspaces seen with events naming `organization`, sorted.
  std::vector<std::string> WorkspacesOfOrganization(std::string_view organization) const;
  // Organizations named by events of `workspace`, sorted (one, unless its events disagree).
  std::vector<std::string> OrganizationsOfWorkspace(std::string_view workspace) const;
  bool KnowsWorkspace(std::string_view workspace) const;
  bool KnowsOrganization(std::string_view organization) const;
  // Every organization seen in an event, sorted.
  std::vector<std::string> Organizations() const;

  // Where a request for `workspace` is answered, from `self`'s point of view:
  // - no partition known for it: kLocal (nobody has consumed an event of it);
  // - every partition it was seen in owned by `self` and serving: kLocal;
  // - every partition owned by one other member that serves them all: kForward to it;
  // - else kUnavailable: a partition with no owner yet, an owner still restoring it (or `self`
  //   owning it but not serving it yet), or partitions owned by different members (its events
  //   are keyed inconsistently; the reason says so).
  Route RouteWorkspace(std::string_view workspace, const LocalState& self) const;
  // The same for a set of partitions (an organization's, for example).
  Route RoutePartitions(const std::set<int32_t>& partitions, const LocalState& self) const;

  // The partitions `instance_id` keeps warm copies (standbys) of when every member keeps
  // `replicas` of them: the members are the owners of claimed partitions plus `instance_id`,
  // in a ring sorted by instance id, and a partition's standbys are the `replicas` members
  // following its owner in the ring (fewer when the group is smaller). Never a partition
  // `instance_id` owns. Sorted; empty when `replicas` <= 0. Every member computes the same
  // placement from the same records, with no coordination.
  std::vector<int32_t> StandbyPartitions(std::string_view instance_id, int replicas) const;

  // Records applied and records refused by Apply.
  int64_t applied() const { return applied_; }
  int64_t malformed() const { return malformed_; }
  const std::map<std::string, MemberInfo, std::less<>>& members() const { return members_; }

  // {"members":[{instance_id,url,owned,serving,standby,time_ms}],"partitions":{"p":"instance",...},
  //  "workspaces":N,"organizations":N}
  void WriteJson(JsonWriter* w) const;

 private:
  std::map<std::string, MemberInfo, std::less<>> members_;
  std::map<std::string, std::set<int32_t>, std::less<>> workspace_partitions_;
  std::map<std::string, std::set<int32_t>, std::less<>> organization_partitions_;
  std::map<std::string, std::set<std::string>, std::less<>> organization_workspaces_;
  std::map<std::string, std::set<std::string>, std::less<>> workspace_organizations_;
  int64_t applied_ = 0;
  int64_t malformed_ = 0;
};

}  // namespace tally::cluster
