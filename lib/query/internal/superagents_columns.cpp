#include "query/internal/superagents_columns.h"

#include <span>

#include "common/saturating.h"

namespace tally::query::internal {
namespace {

using event::EntityKind;
using store::Counters;
using store::Scope;

// Walks the agent rows under every prefix at once (prefix = a counter or bitmap bucket prefix
// plus the agent kind byte), in key order: fn(agent, k, value) for each row of an inventory agent
// under prefixes[k], all rows of one agent together and in increasing k, then done(agent). The
// rows and the inventory share the key order, so they are joined by one forward pass.
template <typename Fn, typename Done>
void MergeScan(const Reader& rd, bool bitmaps, const std::vector<std::string>& prefixes,
               const Inventory& inv, Fn fn, Done done) {
  const size_t n = inv.key_order.size();
  size_t p = 0;  // position in key order
  auto join = [&](std::string_view suffix, std::span<const store::ReadView::ScanRow> rows) {
    while (p < n && inv.KeyId(p) < suffix) ++p;
    if (p >= n || inv.KeyId(p) != suffix) return;
    for (const store::ReadView::ScanRow& row : rows) fn(inv.key_order[p], row.prefix, row.value);
    done(inv.key_order[p]);
  };
  if (bitmaps) {
    rd.view->MergeScanBitmaps(prefixes, join);
  } else {
    rd.view->MergeScanCounters(prefixes, join);
  }
}

// The agent-row prefixes of `buckets`: counter (bitmaps = false) or bitmap bucket prefixes of
// the workspace's entity scope, plus the agent kind byte.
std::vector<std::string> AgentPrefixes(const std::string& ws, const std::vector<BucketRef>& buckets,
                                       bool bitmaps) {
  std::vector<std::string> out(buckets.size());
  for (size_t k = 0; k < buckets.size(); ++k) {
    if (bitmaps) {
      store::BitmapKey(Scope::kEntity, ws, buckets[k].granularity, buckets[k].bucket, "", &out[k]);
    } else {
      store::CounterBucketPrefix(Scope::kEntity, ws, buckets[k].granularity, buckets[k].bucket,
                                 &out[k]);
    }
    out[k].push_back(static_cast<char>(EntityKind::kAgent));
  }
  return out;
}

}  // namespace

std::shared_ptr<CreditColumn> AllCredits(const Reader& rd, const std::string& ws,
                                         const Inventory& inv, DayNumber from, DayNumber to) {
  auto col = std::make_shared<CreditColumn>(inv.agents.size());
  Counters c;
  MergeScan(
      rd, /*bitmaps=*/false, AgentPrefixes(ws, DecomposeRange(from, to), false), inv,
      [&](uint32_t agent, size_t, std::string_view v) {
        c = Counters{};
        if (!store::AddEncodedCounters(v, &c)) return;
        Credits& cr = (*col)[agent];
        SatAddTo(&cr.message, c.d[Counters::kAgentMessageCredits]);
        SatAddTo(&cr.integration, c.d[Counters::kAgentIntegrationCredits]);
      },
      [](uint32_t) {});
  return col;
}

Credits AgentCredits(const Reader& rd, const std::string& ws, const Agent& a,
                     const std::vector<BucketRef>& buckets) {
  Credits cr;
  std::string extra, key;
  store::ScopeIdEntity(EntityKind::kAgent, a.id, &extra);
  Counters c;
  for (const BucketRef& b : buckets) {
    store::CounterKey(Scope::kEntity, ws, b.granularity, b.bucket, extra, &key);
    // A malformed value adds nothing (c stays zero).
    c = Counters{};
    if (!rd.view->AddCounters(key, &c)) continue;
    SatAddTo(&cr.message, c.d[Counters::kAgentMessageCredits]);
    SatAddTo(&cr.integration, c.d[Counters::kAgentIntegrationCredits]);
  }
  return cr;
}

std::shared_ptr<ActiveColumn> AllActive(const Reader& rd, const std::string& ws,
                                        const Inventory& inv,
                                        const std::vector<BucketRef>& buckets) {
  auto col = std::make_shared<ActiveColumn>();
  col->count.assign(inv.agents.size(), 0);
  col->sets = std::make_shared<ActiveSets>();
  col->sets->seq = rd.version();
  col->sets->users.resize(inv.agents.size());
  store::UserBitmap users;
  bool dirty = false;
  MergeScan(
      rd, /*bitmaps=*/true, AgentPrefixes(ws, buckets, true), inv,
      [&](uint32_t, size_t, std::string_view v) {
        users.OrEncoded(v);
        dirty = true;
      },
      [&](uint32_t agent) {
        if (!dirty) return;
        col->count[agent] = static_cast<int64_t>(users.Cardinality());
        col->sets->users[agent] = std::make_unique<store::UserBitmap>(std::move(users));
        dirty = false;
      });
  return col;
}

void OrAgentUsers(const Reader& rd, const std::string& ws, const Agent& a,
                  const std::vector<BucketRef>& buckets, store::UserBitmap* users) {
  std::string extra, key;
  store::ScopeIdEntity(EntityKind::kAgent, a.id, &extra);
  for (const BucketRef& b : buckets) {
    store::BitmapKey(Scope::kEntity, ws, b.granularity, b.bucket, extra, &key);
    rd.view->OrBitmap(key, users);
  }
}

int64_t AgentActive(const Reader& rd, const std::string& ws, const Agent& a,
                    const std::vector<BucketRef>& buckets) {
  store::UserBitmap users;
  OrAgentUsers(rd, ws, a, buckets, &users);
  return static_cast<int64_t>(users.Cardinality());
}

}  // namespace tally::query::internal
