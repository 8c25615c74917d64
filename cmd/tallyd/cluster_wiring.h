#pragma once
// tallyd's wiring of a group of instances (--advertise-url): membership through the cluster
// topic, the consumer's reports of what it owns and consumed, and the HTTP routes that answer
// on the instance owning a request's scope.

#include <memory>
#include <string>

#include "cluster/forwarder.h"
#include "cluster/membership.h"
#include "common/metrics.h"
#include "common/result.h"
#include "http/service.h"
#include "ingest/consumer.h"
#include "tallyd/live_views.h"

namespace tally::tallyd {

struct ClusterParts {
  std::unique_ptr<cluster::Membership> membership;
  std::unique_ptr<cluster::Forwarder> forwarder;
};

// Starts the membership (options.instance_id, url, topic, brokers) and hooks the consumer's
// ownership and event-scope reports into it; the consumer keys request data per workspace.
// `consumer` is filled before Consumer::Create.
Result<std::unique_ptr<ClusterParts>> StartCluster(const cluster::MembershipOptions& options,
                                                   ingest::ConsumerOptions* consumer,
                                                   MetricsRegistry* metrics);

// Keeps the consumer's standbys where the membership places them (MembershipOptions::
// standby_replicas), until DetachConsumer. `consumer` must outlive that.
void AttachConsumer(ClusterParts* parts, ingest::Consumer* consumer);
// Stops telling the consumer about standbys (before it is destroyed).
void DetachConsumer(ClusterParts* parts);

// Makes every workspace-scoped route of `deps` answer on the owning instance, request analytics
// answer from the shares of every instance owning an organization's workspaces, and the
// existence checks (workspace_known, resolve_organization, organization_known,
// all_organizations) see the whole group. Call once the local backends are set. `parts` and
// `live` must outlive the router.
void RouteThroughCluster(ClusterParts* parts, LiveViews* live, http::ServiceDeps* deps);

}  // namespace tally::tallyd
