#include "tallyd/cluster_wiring.h"

#include <algorithm>
#include <future>
#include <map>
#include <set>

#include "http/requests_share.h"
#include "query/requests.h"

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
  consumer->request_scope_by_workspace = true;
  consumer->on_ownership = [m](const std::vector<int32_t>& owned,
                               const std::vector<int32_t>& serving) {
    m->SetAssignment(owned, serving);
  };
  return parts;
}

void AttachConsumer(ClusterParts* parts, ingest::Consumer* consumer) {
  parts->membership->SetStandbyListener(
      [consumer](const std::vector<int32_t>& partitions) { consumer->SetStandby(partitions); });
}

void DetachConsumer(ClusterParts* parts) { parts->membership->SetStandbyListener(nullptr); }

namespace {

// Request analytics over organizations whose workspaces may be spread over the group: answered
// from this instance's own workspaces when it holds them all, else by merging every owner's
// share (query::MergeRequests). A workspace that no instance serves yet makes the answer a 503.
void RouteRequests(ClusterParts* parts, LiveViews* live, http::ServiceDeps* deps) {
  cluster::Membership* m = parts->membership.get();
  cluster::Forwarder* f = parts->forwarder.get();
  deps->requests.gather = [m, f, live](
                              const http::Request& request, query::RequestsMetric metric,
                              const query::RequestsQuery& q) -> Result<query::RequestsResult> {
    query::RequestsQuery here = q;
    std::map<std::string, std::vector<std::string>> elsewhere;  // url -> its workspaces
    std::set<std::string> orgs(q.organizations.begin(), q.organizations.end());
    for (const std::string& org : orgs) {
      for (std::string& ws : m->WorkspacesOfOrganization(org)) {
        cluster::Route route = m->RouteWorkspace(ws);
        switch (route.kind) {
          case cluster::Route::kLocal:
            here.workspace_scopes.emplace_back(org, std::move(ws));
            break;
          case cluster::Route::kForward:
            elsewhere[route.url].push_back(std::move(ws));
            break;
          case cluster::Route::kUnavailable:
            return Fail(ErrorCode::kUnavailable,
                        "Organization " + org + " is not served right now (workspace " + ws + ": " +
                            route.reason + "); retry after the Retry-After delay.");
        }
      }
    }
    auto views = live->Current();
    if (elsewhere.empty()) {
      return query::RunRequests(*views->store, *views->directory, metric, here);
    }
    // The other owners' shares are asked for at once, while this instance collects its own.
    using Reply = Result<http::HttpReply>;
    std::vector<std::pair<std::string, std::future<Reply>>> asked;
    for (auto& [url, workspaces] : elsewhere) {
      std::sort(workspaces.begin(), workspaces.end());
      workspaces.erase(std::unique(workspaces.begin(), workspaces.end()), workspaces.end());
      http::StringPairs headers = {
          {std::string(http::kRequestsShareHeader), http::EncodeShareWorkspaces(workspaces)}};
      asked.emplace_back(
          url, std::async(std::launch::async, [f, &request, url, headers = std::move(headers)] {
            return f->Ask(request, url, headers);
          }));
    }
    std::vector<query::RequestsShare> shares;
    auto mine = query::CollectRequests(*views->store, *views->directory, metric, here);
    std::vector<Reply> replies;
    for (auto& [url, reply] : asked) replies.push_back(reply.get());
    if (!mine) return std::unexpected(mine.error());
    shares.push_back(std::move(*mine));
    for (size_t i = 0; i < asked.size(); ++i) {
      const std::string& url = asked[i].first;
      Reply& reply = replies[i];
      if (!reply) {
        return Fail(ErrorCode::kUnavailable, "The instance at " + url +
                                                 ", which serves part of these organizations, "
                                                 "cannot be reached; retry after the Retry-After "
                                                 "delay.");
      }
      if (reply->status != 200) {
        return Fail(ErrorCode::kUnavailable,
                    "The instance at " + url + " could not give its share (status " +
                        std::to_string(reply->status) + "); retry after the Retry-After delay.");
      }
      auto share = http::ParseRequestsShare(reply->body);
      if (!share) {
        return Fail(ErrorCode::kUnavailable,
                    "The instance at " + url + " sent an unreadable share (" +
                        share.error().message + "); retry after the Retry-After delay.");
      }
      shares.push_back(std::move(*share));
    }
    return query::MergeRequests(metric, q, shares);
  };
  deps->requests.collect =
      [m, live](query::RequestsMetric metric, const query::RequestsQuery& q,
                const std::vector<std::string>& workspaces) -> Result<query::RequestsShare> {
    query::RequestsQuery here = q;
    for (const std::string& ws : workspaces) {
      cluster::Route route = m->RouteWorkspace(ws);
      if (route.kind != cluster::Route::kLocal) {
        return Fail(ErrorCode::kUnavailable,
                    "Workspace " + ws + " is not served by this instance (" +
                        (route.reason.empty() ? "it moved" : route.reason) + ").");
      }
      // The engine keeps the pairs of the query's organizations only.
      for (std::string& org : m->OrganizationsOfWorkspace(ws)) {
        here.workspace_scopes.emplace_back(std::move(org), ws);
      }
    }
    if (here.workspace_scopes.empty()) {
      // Nothing of the query's organizations here: an empty share (with the range checked).
      here.organizations.clear();
    }
    auto views = live->Current();
    return query::CollectRequests(*views->store, *views->directory, metric, here);
  };
  // The store keys request data per workspace: which organizations exist is the group's
  // knowledge (every event naming one was recorded in the cluster topic).
  deps->requests.organization_known = [m](std::string_view org) {
    return m->KnowsOrganization(org);
  };
  deps->requests.all_organizations = [m] { return m->Organizations(); };
}

}  // namespace

void RouteThroughCluster(ClusterParts* parts, LiveViews* live, http::ServiceDeps* deps) {
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
  if (deps->requests.run) RouteRequests(parts, live, deps);
}

}  // namespace tally::tallyd
