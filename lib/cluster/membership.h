#pragma once
// Membership of a tallyd group through Kafka: each instance publishes what it owns and where it
// consumed each workspace to the group's cluster topic, and reads everyone's records into a
// RoutingTable. Kafka's consumer group assigns the partitions; this only makes the assignment
// and the workspace -> partition map visible to every instance, with no cluster protocol of
// its own and no static list of hosts.
//
//   tally::cluster::MembershipOptions o;
//   o.brokers = "kafka1:9092";
//   o.topic = "usage-events.cluster";          // one partition, compacted on a real cluster
//   o.instance_id = "tallyd-a";
//   o.url = "http://10.0.0.5:8080";
//   auto m = tally::cluster::Membership::Start(o, &registry);
//   (*m)->SetAssignment({0, 1, 2}, {0, 1});    // from the consumer's rebalance callback
//   (*m)->NoteScope(1, "8360bf61-...", "org_7"); // for every consumed event (cheap when known)
//   Route r = (*m)->RouteWorkspace("8360bf61-...");
//
// Thread-safety: every method is thread-safe. A reader thread follows the topic; publishing is
// asynchronous (the Kafka client retries) and never blocks the caller.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "cluster/routing_table.h"
#include "common/json_writer.h"
#include "common/metrics.h"
#include "common/result.h"

namespace tally::kafka {
class Producer;
}

namespace tally::cluster {

struct MembershipOptions {
  std::string brokers;           // required
  std::string topic;             // the cluster topic, required (read and written at partition 0)
  std::string instance_id = {};  // required: unique in the group, stable across restarts
  std::string url = {};          // required: where the other instances reach this one's HTTP API
  // How many other instances keep a warm copy of each partition this one owns, and so how
  // many copies of others' partitions this one keeps (RoutingTable::StandbyPartitions). The
  // consumer applies them (SetStandbyListener). 0: none.
  int standby_replicas = 0;
  // Further librdkafka properties for the topic's producer and reader (security, ...).
  std::map<std::string, std::string> extra = {};
};

class Membership {
 public:
  // Creates the producer and starts the reader thread (from the topic's beginning).
  // kInvalidArgument for a missing option or a property the client rejects; kUnavailable when
  // the topic's metadata cannot be read within 10 s.
  static Result<std::unique_ptr<Membership>> Start(const MembershipOptions& options,
                                                   MetricsRegistry* metrics);
  // Publishes that this instance owns nothing any more (so that routes to it stop at once),
  // waits up to 2 s for that to be delivered, and stops the reader.
  ~Membership();
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  // This instance now owns `owned` and serves (has caught up on) `serving` ⊆ owned. Routes
  // computed here use it at once; the record is published when it changed.
  void SetAssignment(std::vector<int32_t> owned, std::vector<int32_t> serving);
  // Calls `listener` with the partitions this instance should keep standbys of now, and again
  // whenever they change (on the reader thread, no lock held), once the reader is synced. The
  // set follows the group's published ownership: it never holds a partition this instance's
  // latest published record owns. Replaces an earlier listener.
  void SetStandbyListener(std::function<void(const std::vector<int32_t>&)> listener);

  // Events of `workspace` (naming `organization`, "" when none) were consumed from `partition`.
  // Each new triple enters this instance's routing at once and is published once per process;
  // a known one costs a hash lookup.
  void NoteScope(int32_t partition, std::string_view workspace, std::string_view organization);

  // RoutingTable::RouteWorkspace / RoutePartitions from this instance's point of view.
  Route RouteWorkspace(std::string_view workspace) const;
  // The route of the union of the organizations' partitions.
  Route RouteOrganizations(const std::vector<std::string>& organizations) const;
  bool KnowsWorkspace(std::string_view workspace) const;
  bool KnowsOrganization(std::string_view organization) const;
  std::vector<std::string> Organizations() const;
  std::vector<std::string> WorkspacesOfOrganization(std::string_view organization) const;
  std::vector<std::string> OrganizationsOfWorkspace(std::string_view workspace) const;

  // True once the reader has applied every record that was in the topic when it started.
  bool synced() const { return synced_.load(); }
  const std::string& instance_id() const { return options_.instance_id; }
  // {"instance_id","url","synced",...RoutingTable::WriteJson fields}
  void WriteJson(JsonWriter* w) const;

 private:
  explicit Membership(MembershipOptions options);
  // Both with mu_ held.
  void Publish(const std::string& key, const std::string& value);
  void PublishSelf();
  void ReadLoop();
  // Recomputes the standby set and tells the listener when it changed. Reader thread (and
  // SetStandbyListener), without mu_.
  void UpdateStandby(bool force);

  MembershipOptions options_;
  std::unique_ptr<kafka::Producer> producer_;
  struct Reader;
  std::unique_ptr<Reader> reader_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> synced_{false};
  int64_t end_at_start_ = 0;  // the topic's high watermark when the reader started

  mutable std::mutex mu_;
  RoutingTable table_;
  LocalState self_;
  std::string scope_key_;                   // reused by NoteScope
  absl::flat_hash_set<std::string> noted_;  // triples published by this process

  std::mutex listener_mu_;  // held while the listener runs (not with mu_)
  std::function<void(const std::vector<int32_t>&)> standby_listener_;

  Counter* published_ = nullptr;
  Counter* publish_failures_ = nullptr;
  Counter* records_read_ = nullptr;
  Counter* gained_ = nullptr;  // partitions assigned here that were not (takeovers, joins)
  Gauge* owned_gauge_ = nullptr;
  Gauge* serving_gauge_ = nullptr;
  Gauge* standby_gauge_ = nullptr;
};

}  // namespace tally::cluster
