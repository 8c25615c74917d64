#include "tallyd/cluster_wiring.h"

#include <algorithm>
#include <set>

namespace tally::tallyd {

Result<std::unique_ptr<ClusterParts>> StartCluster(const cluster::MembershipOptions& options,
                                                   ingest::ConsumerOptions* consumer,
                                                   MetricsRegistry* metrics) {
  auto parts = std::make_unique<ClusterParts>();
  auto membership = cluster::Membership::Start(options, metrics);
  if (!membership) return std::unexpected(membership.error());
  parts->membership = std::move(*membership);
  parts->forwarder = std::make_unique<cluster::Forwarder>(
      parts->membership.get(), cluster::ForwarderOptions{.instance_id = options.instance_id},
      metrics);
  cluster::Membership* m = parts->membership.get();
  consumer->on_event_scope = [m](int32_t partition, std::string_view workspace,
                                 std::string_view organization) {
    m->NoteScope(partition, workspace, organization);
  };
  consumer->on_ownership = [m](const std::vector<int32_t>& owned,
                               const std::vector<int32_t>& serving) {
    m->SetAssignment(owned, serving);
  };
  return parts;
}

void RouteThroughCluster(ClusterParts* parts, http::ServiceDeps* deps) {
  cluster::Membership* m = parts->membership.get();
  cluster::Forwarder* f = parts->forwarder.get();
  auto route_workspace = [f](const http::Request& r, std::string_view ws) {
    return f->ForWorkspace(r, ws);
  };
  // A workspace is known to the group when any instance consumed it, or to this one's views.
  auto known = [m](auto local) {
    return [m, local = std::move(local)](std::string_view ws) {
      return m->KnowsWorkspace(ws) || local(ws);
    };
  };
  deps->workspace_metrics.route = route_workspace;
  deps->workspace_metrics.workspace_known =
      known(std::move(deps->workspace_metrics.workspace_known));
  if (deps->leaderboard.run) {
    deps->leaderboard.route = route_workspace;
    deps->leaderboard.workspace_known = known(std::move(deps->leaderboard.workspace_known));
    deps->leaderboard.resolve_organization =
        [m, local = std::move(deps->leaderboard.resolve_organization)](
            std::string_view org) -> Result<std::string> {
      std::vector<std::string> found = m->WorkspacesOfOrganization(org);
      auto here = local(org);
      if (!here && here.error().code != ErrorCode::kNotFound) return here;
      if (here && std::find(found.begin(), found.end(), *here) == found.end()) {
        found.push_back(*here);
      }
      if (found.empty()) return Fail(ErrorCode::kNotFound, "Workspace not found");
      if (found.size() > 1) {
        return Fail(ErrorCode::kInvalidArgument,
                    "The organization multiplai id matches several workspaces; pass "
                    "workspace_uuid.",
                    "organization_multiplai_id");
      }
      return found.front();
    };
  }
  if (deps->superagents.run) {
    deps->superagents.route = route_workspace;
    deps->superagents.workspace_known = known(std::move(deps->superagents.workspace_known));
  }
  if (deps->requests.run) {
    deps->requests.route = [f](const http::Request& r, const std::vector<std::string>& orgs) {
      return f->ForOrganizations(r, orgs);
    };
    deps->requests.organization_known =
        [m, local = std::move(deps->requests.organization_known)](std::string_view org) {
          const std::vector<std::string> all = m->Organizations();
          return std::binary_search(all.begin(), all.end(), org) || local(org);
        };
    deps->requests.all_organizations = [m, local = std::move(deps->requests.all_organizations)] {
      std::set<std::string> all;
      for (auto& org : m->Organizations()) all.insert(std::move(org));
      for (auto& org : local()) all.insert(std::move(org));
      return std::vector<std::string>(all.begin(), all.end());
    };
  }
}

}  // namespace tally::tallyd
