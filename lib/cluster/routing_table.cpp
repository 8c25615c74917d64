#include "cluster/routing_table.h"

#include <simdjson.h>

#include <algorithm>
#include <cstdio>

namespace tally::cluster {
namespace {

constexpr std::string_view kMemberPrefix = "member/";
constexpr std::string_view kScopePrefix = "scope/";
constexpr std::string_view kSplitReason =
    "its events were consumed from partitions owned by different instances, and answers are "
    "not merged across instances";

const std::set<int32_t>& EmptySet() {
  static const std::set<int32_t> empty;
  return empty;
}

void WritePartitions(JsonWriter* w, std::string_view key, const std::vector<int32_t>& partitions) {
  w->Key(key).BeginArray();
  for (int32_t p : partitions) w->Int(p);
  w->EndArray();
}

// The member as EncodeMember stores it and /readyz shows it.
void WriteMember(JsonWriter* w, const MemberInfo& member) {
  w->BeginObject();
  w->Key("instance_id").String(member.instance_id);
  w->Key("url").String(member.url);
  WritePartitions(w, "owned", member.owned);
  WritePartitions(w, "serving", member.serving);
  WritePartitions(w, "standby", member.standby);
  w->Key("time_ms").Int(member.time_ms);
  w->EndObject();
}

bool Contains(const std::vector<int32_t>& sorted, int32_t p) {
  return std::binary_search(sorted.begin(), sorted.end(), p);
}

// Reads a JSON array of partition numbers into `out`, sorted and unique. False if malformed.
bool ReadPartitions(simdjson::dom::element e, std::vector<int32_t>* out) {
  simdjson::dom::array array;
  if (e.get_array().get(array)) return false;
  for (simdjson::dom::element item : array) {
    int64_t p;
    if (item.get_int64().get(p) || p < 0 || p > INT32_MAX) return false;
    out->push_back(static_cast<int32_t>(p));
  }
  std::sort(out->begin(), out->end());
  out->erase(std::unique(out->begin(), out->end()), out->end());
  return true;
}

}  // namespace

std::string MemberKey(std::string_view instance_id) {
  std::string key(kMemberPrefix);
  key.append(instance_id);
  return key;
}

std::string EncodeMember(const MemberInfo& member) {
  std::string out;
  JsonWriter w(&out);
  WriteMember(&w, member);
  return out;
}

void ScopeKey(int32_t partition, std::string_view workspace, std::string_view organization,
              std::string* out) {
  char digits[16];
  const int n = std::snprintf(digits, sizeof digits, "%d", partition);
  out->assign(kScopePrefix);
  out->append(digits, static_cast<size_t>(n)).append("/");
  out->append(workspace).append("/");
  out->append(organization);
}

std::string ScopeKey(int32_t partition, std::string_view workspace, std::string_view organization) {
  std::string key;
  ScopeKey(partition, workspace, organization, &key);
  return key;
}

std::string EncodeScope(int32_t partition, std::string_view workspace,
                        std::string_view organization) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("partition").Int(partition);
  w.Key("workspace").String(workspace);
  w.Key("organization").String(organization);
  w.EndObject();
  return out;
}

bool RoutingTable::Apply(std::string_view key, std::string_view value, int64_t offset) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  auto refuse = [this] {
    ++malformed_;
    return false;
  };
  const bool member = key.starts_with(kMemberPrefix);
  if (!member && !key.starts_with(kScopePrefix)) return refuse();
  if (parser.parse(simdjson::padded_string(value)).get(doc) || !doc.is_object()) return refuse();
  if (member) {
    MemberInfo m;
    std::string_view text;
    if (doc["instance_id"].get_string().get(text) || text.empty()) return refuse();
    m.instance_id = text;
    if (key.substr(kMemberPrefix.size()) != m.instance_id) return refuse();
    if (doc["url"].get_string().get(text)) return refuse();
    m.url = text;
    simdjson::dom::element list;
    if (doc["owned"].get(list) || !ReadPartitions(list, &m.owned)) return refuse();
    if (doc["serving"].get(list) || !ReadPartitions(list, &m.serving)) return refuse();
    // Absent in records of instances that keep no standbys.
    if (!doc["standby"].get(list) && !ReadPartitions(list, &m.standby)) return refuse();
    if (doc["time_ms"].get_int64().get(m.time_ms)) return refuse();
    m.offset = offset;
    members_[m.instance_id] = std::move(m);
  } else {
    int64_t p;
    std::string_view workspace, organization;
    if (doc["partition"].get_int64().get(p) || p < 0 || p > INT32_MAX) return refuse();
    if (doc["workspace"].get_string().get(workspace) || workspace.empty()) return refuse();
    if (doc["organization"].get_string().get(organization)) return refuse();
    AddScope(static_cast<int32_t>(p), workspace, organization);
  }
  ++applied_;
  return true;
}

void RoutingTable::AddScope(int32_t partition, std::string_view workspace,
                            std::string_view organization) {
  workspace_partitions_[std::string(workspace)].insert(partition);
  if (!organization.empty()) {
    organization_partitions_[std::string(organization)].insert(partition);
    organization_workspaces_[std::string(organization)].insert(std::string(workspace));
    workspace_organizations_[std::string(workspace)].insert(std::string(organization));
  }
}

const MemberInfo* RoutingTable::OwnerOf(int32_t partition) const {
  const MemberInfo* owner = nullptr;
  for (const auto& [id, m] : members_) {
    if (Contains(m.owned, partition) && (owner == nullptr || m.offset > owner->offset)) owner = &m;
  }
  return owner;
}

std::vector<int32_t> RoutingTable::StandbyPartitions(std::string_view instance_id,
                                                     int replicas) const {
  std::vector<int32_t> out;
  if (replicas <= 0) return out;
  std::set<int32_t> claimed;
  for (const auto& [id, m] : members_) claimed.insert(m.owned.begin(), m.owned.end());
  std::map<int32_t, const MemberInfo*> owners;
  std::set<std::string_view> ring = {instance_id};
  for (int32_t p : claimed) {
    const MemberInfo* owner = OwnerOf(p);
    owners[p] = owner;
    ring.insert(owner->instance_id);
  }
  const std::vector<std::string_view> order(ring.begin(), ring.end());
  const auto me = std::find(order.begin(), order.end(), instance_id) - order.begin();
  const auto n = static_cast<int64_t>(order.size());
  const int64_t copies = std::min<int64_t>(replicas, n - 1);
  for (const auto& [p, owner] : owners) {
    if (owner->instance_id == instance_id) continue;
    const auto at = std::find(order.begin(), order.end(), owner->instance_id) - order.begin();
    // Distance from the owner to this instance along the ring: 1..n-1.
    const int64_t distance = (me - at + n) % n;
    if (distance >= 1 && distance <= copies) out.push_back(p);
  }
  return out;
}

const std::set<int32_t>& RoutingTable::PartitionsOfWorkspace(std::string_view workspace) const {
  auto it = workspace_partitions_.find(workspace);
  return it == workspace_partitions_.end() ? EmptySet() : it->second;
}

const std::set<int32_t>& RoutingTable::PartitionsOfOrganization(
    std::string_view organization) const {
  auto it = organization_partitions_.find(organization);
  return it == organization_partitions_.end() ? EmptySet() : it->second;
}

std::vector<std::string> RoutingTable::WorkspacesOfOrganization(
    std::string_view organization) const {
  auto it = organization_workspaces_.find(organization);
  if (it == organization_workspaces_.end()) return {};
  return {it->second.begin(), it->second.end()};
}

std::vector<std::string> RoutingTable::OrganizationsOfWorkspace(std::string_view workspace) const {
  auto it = workspace_organizations_.find(workspace);
  if (it == workspace_organizations_.end()) return {};
  return {it->second.begin(), it->second.end()};
}

bool RoutingTable::KnowsOrganization(std::string_view organization) const {
  return organization_partitions_.contains(organization);
}

bool RoutingTable::KnowsWorkspace(std::string_view workspace) const {
  return workspace_partitions_.contains(workspace);
}

std::vector<std::string> RoutingTable::Organizations() const {
  std::vector<std::string> out;
  out.reserve(organization_partitions_.size());
  for (const auto& [org, partitions] : organization_partitions_) out.push_back(org);
  return out;
}

Route RoutingTable::RouteWorkspace(std::string_view workspace, const LocalState& self) const {
  Route route = RoutePartitions(PartitionsOfWorkspace(workspace), self);
  if (route.reason == kSplitReason) {
    route.reason +=
        "; a workspace's events must all be keyed by its workspace_id with one partitioner";
  }
  return route;
}

Route RoutingTable::RoutePartitions(const std::set<int32_t>& partitions,
                                    const LocalState& self) const {
  Route route;
  if (partitions.empty()) return route;  // nobody consumed it: every instance answers alike
  const MemberInfo* target = nullptr;
  bool local = false;
  for (int32_t p : partitions) {
    // This instance knows its own assignment first-hand; its published record may lag it.
    const bool mine = Contains(self.owned, p);
    const MemberInfo* owner = mine ? nullptr : OwnerOf(p);
    if (owner != nullptr && owner->instance_id == self.instance_id) owner = nullptr;
    if (!mine && owner == nullptr) {
      route.kind = Route::kUnavailable;
      route.reason = "partition " + std::to_string(p) + " has no owner yet";
      return route;
    }
    if (mine ? !Contains(self.serving, p) : !Contains(owner->serving, p)) {
      route.kind = Route::kUnavailable;
      route.reason = "partition " + std::to_string(p) + " is still being restored by " +
                     (mine ? self.instance_id : owner->instance_id);
      return route;
    }
    if ((mine && target != nullptr) || (!mine && (local || (target && target != owner)))) {
      route.kind = Route::kUnavailable;
      route.reason = std::string(kSplitReason);
      return route;
    }
    if (mine) {
      local = true;
    } else {
      target = owner;
    }
  }
  if (!local) {
    route.kind = Route::kForward;
    route.url = target->url;
    route.instance_id = target->instance_id;
  }
  return route;
}

void RoutingTable::WriteJson(JsonWriter* w) const {
  w->BeginObject();
  w->Key("members").BeginArray();
  for (const auto& [id, m] : members_) WriteMember(w, m);
  w->EndArray();
  w->Key("partitions").BeginObject();
  std::set<int32_t> claimed;
  for (const auto& [id, m] : members_) claimed.insert(m.owned.begin(), m.owned.end());
  for (int32_t p : claimed) {
    w->Key(std::to_string(p)).String(OwnerOf(p)->instance_id);
  }
  w->EndObject();
  w->Key("workspaces").Int(static_cast<int64_t>(workspace_partitions_.size()));
  w->Key("organizations").Int(static_cast<int64_t>(organization_partitions_.size()));
  w->EndObject();
}

}  // namespace tally::cluster
