#include "query/internal/superagents_listing.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <ranges>
#include <string_view>

#include "query/internal/substring.h"
#include "query/internal/superagents_columns.h"

namespace tally::query::internal {
namespace {

bool VisibilityMatches(VisibilityFilter f, Vis v) {
  switch (f) {
    case VisibilityFilter::kAny:
      return true;
    case VisibilityFilter::kPrivate:
      return v == kPrivate;
    case VisibilityFilter::kWorkspace:
      return v == kWorkspace;
    case VisibilityFilter::kPublicWithLogin:
      return v == kPublicWithLogin;
    case VisibilityFilter::kPublicWithoutLogin:
      return v == kPublicWithoutLogin;
    case VisibilityFilter::kPublic:
      return v == kPublicWithLogin || v == kPublicWithoutLogin;
  }
  return false;
}

// Sets hit[i] = 1 for every item i of `joined` that contains `needle`: items are each followed
// by '\0', item i's at ends[i]. One FindSubstring pass (internal/substring.h, 16 positions at a
// time: up to 3x faster than glibc's memmem here, itself about 3x faster than
// std::boyer_moore_horspool_searcher); after a hit, the search goes on from the next item. A
// needle holding '\0' could span two items: each item is then searched on its own.
void MarkContaining(std::string_view joined, const std::vector<uint32_t>& ends,
                    std::string_view needle, uint8_t* hit) {
  if (needle.find('\0') != std::string_view::npos) {
    for (size_t i = 0; i < ends.size(); ++i) {
      const size_t begin = i == 0 ? 0 : ends[i - 1] + 1;
      hit[i] = joined.substr(begin, ends[i] - begin).find(needle) != std::string_view::npos;
    }
    return;
  }
  const char* const base = joined.data();
  const char* const end = base + joined.size();
  size_t i = 0;  // hits come in increasing item order
  for (const char* from = base; from < end;) {
    const char* found = internal::FindSubstring(from, end, needle);
    if (!found) break;
    while (ends[i] < static_cast<size_t>(found - base)) ++i;
    hit[i] = 1;
    from = base + ends[i] + 1;
  }
}

// The matching agents of `indexes` (agent indexes), in their order, into `*into`: a
// branch-free compaction (each step writes a slot and advances by the match bit) into a
// per-thread buffer as long as `indexes` plus one, so that it stays in bounds whatever
// `indexes` holds; then the matches are copied out.
template <typename Indexes>
void FilterMatching(const Indexes& indexes, const std::vector<uint8_t>& match,
                    std::vector<uint32_t>* into) {
  static thread_local std::vector<uint32_t> scratch;
  scratch.resize(std::ranges::size(indexes) + 1);
  size_t k = 0;
  for (uint32_t i : indexes) {
    scratch[k] = i;
    k += match[i];
  }
  into->assign(scratch.begin(), scratch.begin() + static_cast<std::ptrdiff_t>(k));
}

// Sorts `listed` (agent indexes, in id order) by (key, id), and the point_* arrays (when not
// empty) with it. Returns the sorted keys when `keep_keys` (a whole-table order on a column, to
// be cached with its keys), else nothing.
std::vector<double> SortListed(const Inventory& inv, SuperagentSortField field, bool descending,
                               const CreditColumn* credits, const ActiveColumn* active,
                               bool keep_keys, std::vector<uint32_t>* listed_io,
                               std::vector<Credits>* point_credits_io,
                               std::vector<int64_t>* point_active_io) {
  const std::vector<Agent>& agents = inv.agents;
  std::vector<uint32_t>& listed = *listed_io;
  std::vector<Credits>& point_credits = *point_credits_io;
  std::vector<int64_t>& point_active = *point_active_io;
  // Sort keys by agent index (a numeric key for the numeric fields).
  std::vector<double> numeric;
  const bool is_numeric = field == SuperagentSortField::kCreatedAt ||
                          field == SuperagentSortField::kActiveUsers ||
                          field == SuperagentSortField::kMessageCredits ||
                          field == SuperagentSortField::kIntegrationCredits ||
                          field == SuperagentSortField::kTotalCredits;
  if (is_numeric) {
    // Keyed by position in `listed` (which is sorted by index, i.e. by id).
    numeric.resize(listed.size());
    for (size_t k = 0; k < listed.size(); ++k) {
      const uint32_t i = listed[k];
      const Credits c = point_credits.empty() ? (*credits)[i] : point_credits[k];
      switch (field) {
        case SuperagentSortField::kCreatedAt:
          numeric[k] = static_cast<double>(agents[i].created_at_ms);
          break;
        case SuperagentSortField::kActiveUsers:
          numeric[k] = static_cast<double>(point_active.empty() ? (*active)[i] : point_active[k]);
          break;
        case SuperagentSortField::kMessageCredits:
          numeric[k] = c.message;
          break;
        case SuperagentSortField::kIntegrationCredits:
          numeric[k] = c.integration;
          break;
        default:
          numeric[k] = c.message + c.integration;
      }
    }
  }
  // Positions sorted by (key, id); ids order like positions.
  std::vector<uint32_t> pos(listed.size());
  for (uint32_t k = 0; k < pos.size(); ++k) pos[k] = k;
  const SortLess text_of{&inv, field, descending, nullptr, nullptr};
  auto str_key = [&](uint32_t k) { return text_of.Text(listed[k]); };
  if (is_numeric) {
    // created_at_ms fits a double exactly (< 2^53).
    std::sort(pos.begin(), pos.end(), [&](uint32_t x, uint32_t y) {
      if (numeric[x] != numeric[y])
        return descending ? numeric[x] > numeric[y] : numeric[x] < numeric[y];
      return x < y;
    });
  } else {
    std::sort(pos.begin(), pos.end(), [&](uint32_t x, uint32_t y) {
      const int c = str_key(x).compare(str_key(y));
      if (c != 0) return descending ? c > 0 : c < 0;
      return x < y;
    });
  }
  std::vector<uint32_t> sorted(listed.size());
  for (size_t k = 0; k < pos.size(); ++k) sorted[k] = listed[pos[k]];
  std::vector<double> sorted_keys;
  if (keep_keys) {
    sorted_keys.resize(pos.size());
    for (size_t k = 0; k < pos.size(); ++k) sorted_keys[k] = numeric[pos[k]];
  }
  if (!point_credits.empty()) {
    std::vector<Credits> pc(pos.size());
    std::vector<int64_t> pa(pos.size());
    for (size_t k = 0; k < pos.size(); ++k) {
      pc[k] = point_credits[pos[k]];
      pa[k] = point_active[pos[k]];
    }
    point_credits = std::move(pc);
    point_active = std::move(pa);
  }
  listed = std::move(sorted);
  return sorted_keys;
}

}  // namespace

size_t MatchAgents(const Inventory& inv, const SuperagentsRequest& req, std::vector<uint8_t>* out) {
  const size_t n = inv.agents.size();
  std::vector<uint8_t>& match = *out;
  // The passes over every agent are branch-free (table lookups and masks): with a search
  // matching a fraction of the agents, a branch per agent would be mispredicted at random.
  std::array<uint8_t, 256> vis_ok{};
  for (int v = 0; v < 256; ++v) vis_ok[v] = VisibilityMatches(req.visibility, static_cast<Vis>(v));
  match.assign(n, 0);
  size_t listed_count = 0;
  const std::string needle = Folded(req.search);
  if (needle.empty()) {
    for (size_t i = 0; i < n; ++i) match[i] = vis_ok[inv.vis_of[i]];
  } else {
    // Names and creator emails, one pass each. email_hit[e + 1] for email slot e;
    // email_hit[0] for kNoEmail (+ 1 wraps it to 0).
    MarkContaining(inv.folded_names, inv.name_end, needle, match.data());
    std::vector<uint8_t> email_hit(inv.email_end.size() + 1, 0);
    MarkContaining(inv.folded_emails, inv.email_end, needle, email_hit.data() + 1);
    for (size_t i = 0; i < n; ++i) {
      const uint32_t slot = inv.email_of[i] + 1;
      match[i] = (match[i] | email_hit[slot]) & vis_ok[inv.vis_of[i]];
    }
  }
  for (uint8_t m : match) listed_count += m;
  return listed_count;
}

void OrderListing(Cache& cache, const std::string& key, const Reader& rd, const std::string& ws,
                  const OrderKey& order_key, const std::vector<uint8_t>& match, size_t listed_count,
                  const std::vector<BucketRef>& range, const std::vector<BucketRef>& last30,
                  Listing* out) {
  const std::vector<Agent>& agents = out->inv->agents;
  const size_t n = agents.size();
  const CreditColumn* credits = out->credits.get();
  const ActiveColumn* active = out->active.get();
  std::vector<uint32_t>& listed = out->listed;
  std::vector<Credits>& point_credits = out->point_credits;
  std::vector<int64_t>& point_active = out->point_active;
  listed.reserve(listed_count);
  if (std::shared_ptr<const Order> order = cache.FindOrder(key, rd.version(), order_key);
      order && credits && active) {
    FilterMatching(order->index, match, &listed);
  } else {
    // Sorting the whole table pays when many agents are listed: its order is cached and serves
    // every later search with the same sort. A few listed agents are sorted on their own.
    const bool whole = credits && active && listed_count * 8 >= n;
    if (whole) {
      listed.resize(n);
      for (uint32_t i = 0; i < n; ++i) listed[i] = i;  // sort the whole table, cache its order
    } else {
      FilterMatching(std::views::iota(uint32_t{0}, static_cast<uint32_t>(n)), match, &listed);
      if (!credits || !active) {
        point_credits.resize(listed.size());
        point_active.resize(listed.size());
        for (size_t k = 0; k < listed.size(); ++k) {
          const Agent& a = agents[listed[k]];
          point_credits[k] = credits ? (*credits)[listed[k]] : AgentCredits(rd, ws, a, range);
          point_active[k] = active ? (*active)[listed[k]] : AgentActive(rd, ws, a, last30);
        }
      }
    }
    std::vector<double> sorted_keys =
        SortListed(*out->inv, order_key.field, order_key.descending, credits, active,
                   whole && IsColumnSort(order_key.field), &listed, &point_credits, &point_active);
    if (whole) {
      auto order = std::make_shared<const Order>(Order{listed, std::move(sorted_keys)});
      cache.PutOrder(key, rd.version(), order_key, order);
      listed.clear();
      for (uint32_t i : order->index)
        if (match[i]) listed.push_back(i);
    }
  }
}

}  // namespace tally::query::internal
