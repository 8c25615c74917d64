#include "query/superagents.h"

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/parse.h"
#include "query/internal/superagents_cache.h"
#include "query/internal/superagents_columns.h"
#include "query/internal/superagents_listing.h"
#include "query/internal/superagents_refresh.h"
#include "query/internal/superagents_table.h"
#include "query/range.h"
#include "store/store.h"

// How a request is answered (see superagents.h for the semantics):
//
//  1. The workspace's agent table ("inventory": every live agent with its name, visibility,
//     owner, creator, created_at and creator email, plus lower-cased search texts) is built from
//     one store snapshot (store::ReadView) by one scan of the agent rows and one scan (or a few
//     point reads) of the workspace's user profiles.
//  2. Credits over [from, to] and active users of the last 30 days are computed either for the
//     whole table (one counter scan / bitmap scan per bucket of the range, when many agents are
//     listed) or for the listed agents only (point reads, when few are).
//  3. Search and visibility filter the table, the listed agents are sorted by index, and only
//     then are the result rows materialized.
//
// The table and the whole-table credit and active-user columns are kept in the caller's
// SuperagentsCache, keyed by (store identity and path, workspace) and tagged with the version of
// the store state they describe (ReadView::version): reused as they are by a request whose snapshot
// has the same version; brought forward by Refresh (internal/superagents_refresh.h) from what the
// store's change log says the writes since did; rebuilt when the log cannot say. A cached answer
// equals a recomputed one (credits up to the last bits of a double: the same amounts added in
// another order).
//
// Where: internal/superagents_table.* (the table and its build), superagents_columns.* (the
// credit and active-user columns), superagents_cache.* (the cache), superagents_refresh.*
// (bringing a cached table forward), superagents_listing.* (filter, order and rows); this file
// answers a request with them.

namespace tally::query {
namespace {

using internal::ActiveColumn;
using internal::Cache;
using internal::CacheEntry;
using internal::CreditColumn;
using internal::Inventory;
using internal::Listing;
using internal::OrderKey;
using internal::Reader;
using internal::UsePointReads;

// The start of every cache key of `store`: its identity and path (a rebuilt store or a checkpoint
// copy opened in this process has its own history after the copy, so never shares entries); the
// workspace id follows.
std::string StoreKeyPrefix(const store::Store& store) {
  std::string prefix = store.identity();
  prefix.push_back('\0');
  prefix += store.path();
  prefix.push_back('\0');
  return prefix;
}

// How long the store's writes keep bringing a cached table forward after a request last used it.
constexpr auto kFollowFor = std::chrono::minutes(5);

// Brings the store's recently used cached tables forward right after a write (Store::Follow), so
// that requests find them at the store's latest state instead of paying for the refresh. Skips a
// table a request is refreshing or rebuilding at the moment (the writer does not wait for it).
void FollowWrites(Cache& cache, const store::Store& store) {
  const std::string prefix = StoreKeyPrefix(store);
  for (const std::string& key : cache.RecentlyUsed(prefix, kFollowFor)) {
    const std::shared_ptr<std::mutex> mu = cache.RefreshMutex(key);
    if (!mu) continue;
    std::unique_lock lock(*mu, std::try_to_lock);
    if (!lock.owns_lock()) continue;
    const Reader rd(store);
    Refresh(cache, key, rd, key.substr(prefix.size()));
  }
}

// Checks the request and sets the credit range it asks for (default: the first day of this UTC
// month .. today). Errors as OpenSuperagents.
Status CheckRequest(const SuperagentsRequest& req, DayNumber today, DayNumber* from_out,
                    DayNumber* to_out) {
  if (req.from.has_value() != req.to.has_value()) {
    return req.from ? Fail(ErrorCode::kInvalidArgument,
                           "The to field is required when from is present.", "to")
                    : Fail(ErrorCode::kInvalidArgument,
                           "The from field is required when to is present.", "from");
  }
  if (const std::optional<size_t> chars = Utf8Length(req.search); !chars) {
    return Fail(ErrorCode::kInvalidArgument, "The search field must be a valid UTF-8 string.",
                "search");
  } else if (*chars > kSuperagentsMaxSearch) {
    return Fail(ErrorCode::kInvalidArgument,
                "The search field must not be greater than 100 characters.", "search");
  }
  DayNumber from, to;
  if (req.from) {
    from = *req.from;
    to = *req.to;
  } else {
    const CivilDate c = CivilFromDays(today);
    from = DaysFromCivil(c.year, c.month, 1);
    to = today;
  }
  *from_out = from;
  *to_out = to;
  if (from > to) {
    return Fail(ErrorCode::kInvalidArgument, "The to field must be a date after or equal to from.",
                "to");
  }
  if (to - from + 1 > kSuperagentsMaxDays) {
    return Fail(
        ErrorCode::kInvalidArgument,
        "The date range must not be longer than " + std::to_string(kSuperagentsMaxDays) + " days.",
        "from");
  }
  return Ok();
}

// The table of `ws` at the reader's snapshot: cached, brought forward from the cached state, or
// built (and cached unless empty) when the view is stable; null when it must be computed but the
// view is not stable.
std::shared_ptr<const Inventory> FindInventory(Cache& cache, const std::string& cache_key,
                                               const Reader& rd, const std::string& ws,
                                               bool stable) {
  std::shared_ptr<const Inventory> inv = cache.FindInventory(cache_key, rd.version());
  if (!inv && !stable) return nullptr;
  if (!inv && Refresh(cache, cache_key, rd, ws)) inv = cache.FindInventory(cache_key, rd.version());
  if (!inv) {
    std::shared_ptr<const Inventory> built = BuildInventory(rd, ws);
    cache.CountBuild();
    if (built->agents.empty()) return built;
    CacheEntry entry;
    entry.seq = rd.version();
    entry.inventory = built;
    cache.Put(cache_key, std::move(entry));
    inv = std::move(built);
  }
  return inv;
}

}  // namespace

SuperagentsCache::SuperagentsCache(size_t max_bytes)
    : cache_(std::make_shared<internal::Cache>(max_bytes)) {}

SuperagentsCache::~SuperagentsCache() = default;

SuperagentsCacheStats SuperagentsCache::Stats() const { return cache_->Stats(); }

void SuperagentsCache::SetMaxBytes(size_t max_bytes) { cache_->SetMaxBytes(max_bytes); }

Result<std::shared_ptr<const SuperagentsListing>> OpenSuperagents(const store::Store& store,
                                                                  SuperagentsCache& superagents,
                                                                  const Clock& clock,
                                                                  const SuperagentsRequest& req) {
  auto out = std::make_shared<Listing>();
  const DayNumber today = clock.Today();
  if (Status s = CheckRequest(req, today, &out->from_, &out->to_); !s) {
    return std::unexpected(s.error());
  }
  const DayNumber from = out->from_, to = out->to_;
  const std::string& ws = req.workspace_id;
  const std::string cache_key = StoreKeyPrefix(store) + ws;

  Cache& cache = *superagents.cache_;
  // From now on the store's writes bring its cached tables forward as they happen (for as long
  // as the cache lives).
  store.Follow(&cache, [weak = std::weak_ptr<Cache>(superagents.cache_)](const store::Store& s) {
    if (const std::shared_ptr<Cache> followed = weak.lock()) FollowWrites(*followed, s);
  });
  // A first attempt reads with a plain view and answers from the cache; when something must be
  // computed and cached (a table, a refresh, a column), it starts again with a stable view.
  for (const bool stable : {false, true}) {
    // A refresh in progress (the follower's after a write, or another request's) is waited for
    // rather than repeated, before a stable view holds staging off. The mutex outlives the lock
    // even if the entry is evicted meanwhile.
    std::optional<Reader> reader;
    if (!stable) reader.emplace(store, /*stable=*/false);
    std::shared_ptr<std::mutex> refresh_mu;
    std::unique_lock<std::mutex> refreshing;
    if (stable || cache.Seq(cache_key) < reader->version()) {
      refresh_mu = cache.RefreshMutex(cache_key);
      if (refresh_mu) refreshing = std::unique_lock(*refresh_mu);
    }
    if (stable) reader.emplace(store, /*stable=*/true);
    // The cache may be past this snapshot (brought forward meanwhile): a newer snapshot (any state
    // since the request began is a correct answer) reuses it instead of building an older state.
    if (cache.Seq(cache_key) > reader->version()) {
      reader.emplace(store, stable);  // destroys the old one first (a stable view's hold)
    }
    const Reader& rd = *reader;

    // 1. The inventory at this snapshot.
    std::shared_ptr<const Inventory> inv = FindInventory(cache, cache_key, rd, ws, stable);
    if (!inv) continue;
    if (inv->agents.empty()) return out;
    if (refreshing.owns_lock()) refreshing.unlock();
    const size_t n = inv->agents.size();

    // 2. Search and visibility: match[i] for every agent, and how many match.
    std::vector<uint8_t> match;
    const size_t listed_count = MatchAgents(*inv, req, &match);
    if (listed_count == 0) return out;

    // 3. Credits over [from, to] and active users of the last 30 days: whole-table columns (cached
    // or computed by scans), or point reads for a few listed agents.
    const std::vector<BucketRef> range = DecomposeRange(from, to);
    const std::vector<BucketRef> last30 = DecomposeRange(today - 29, today);
    std::shared_ptr<const CreditColumn> credits =
        cache.FindCredits(cache_key, rd.version(), from, to);
    if (!credits && !UsePointReads(listed_count, range.size(), n)) {
      if (!stable) continue;
      std::shared_ptr<const CreditColumn> col = AllCredits(rd, ws, *inv, from, to);
      cache.CountColumnScan();
      cache.PutCredits(cache_key, rd.version(), from, to, col);
      credits = std::move(col);
    }
    std::shared_ptr<const ActiveColumn> active = cache.FindActive(cache_key, rd.version(), today);
    if (!active && !UsePointReads(listed_count, last30.size(), n)) {
      if (!stable) continue;
      std::shared_ptr<const ActiveColumn> col = AllActive(rd, ws, *inv, last30);
      cache.CountColumnScan();
      cache.PutActive(cache_key, rd.version(), today, col);
      active = std::move(col);
    }

    // 4. The listing order: a cached order of the whole table filtered by `match`, or the listed
    // agents sorted here.
    out->inv = std::move(inv);
    out->credits = std::move(credits);
    out->active = std::move(active);
    const OrderKey order_key{req.sort.field, req.sort.descending, from, to, today};
    OrderListing(cache, cache_key, rd, ws, order_key, match, listed_count, range, last30,
                 out.get());
    return out;
  }
  return out;  // not reached: the stable attempt always answers
}

}  // namespace tally::query
