#include "query/leaderboard.h"

#include <algorithm>
#include <unordered_map>

#include "common/saturating.h"
#include "query/range.h"
#include "store/store.h"

namespace tally::query {
namespace {

using event::Action;
using event::EntityKind;
using store::Counters;

constexpr int kCreatedField = Counters::CountField(EntityKind::kAgent, Action::kCreated);

struct Counts {
  int64_t current = 0;
  int64_t previous = 0;
};

// Adds the agent.created counts of every user of [from, to] into (*out)[user].*slot.
void ScanUsers(const store::ReadView& view, std::string_view ws, DayNumber from, DayNumber to,
               int64_t Counts::*slot, std::unordered_map<uint32_t, Counts>* out) {
  std::string key;
  for (const BucketRef& b : DecomposeRange(from, to)) {
    store::UserPackKey(ws, b.granularity, b.bucket, &key);
    view.ForEachUserCounters(key, [&](uint32_t user, const Counters& c) {
      const int64_t n = c.i[kCreatedField];
      if (n != 0) SatAddTo(&((*out)[user].*slot), n);
    });
  }
}

// agent.created count of one user over [from, to].
int64_t SumUser(const store::ReadView& view, std::string_view ws, uint32_t user, DayNumber from,
                DayNumber to) {
  std::string key;
  int64_t n = 0;
  for (const BucketRef& b : DecomposeRange(from, to)) {
    store::UserPackKey(ws, b.granularity, b.bucket, &key);
    Counters c;
    view.AddUserCounters(key, user, &c);
    SatAddTo(&n, c.i[kCreatedField]);
  }
  return n;
}

std::optional<std::string> NonEmpty(const store::Record& r, uint8_t id) {
  const store::Field* f = store::FindField(r, id);
  if (!f || f->value.empty()) return std::nullopt;
  return f->value;
}

}  // namespace

double GrowthPercentage(int64_t current, int64_t previous) {
  // Hundredths of a percent, rounded half away from zero: 10000 * (cur - prev) / prev.
  // In 128 bits: counts near INT64_MAX (saturated sums) cannot overflow.
  const __int128 prev = previous;
  const __int128 num = (static_cast<__int128>(current) - prev) * 10000;
  const __int128 q = num >= 0 ? (2 * num + prev) / (2 * prev) : -((2 * -num + prev) / (2 * prev));
  return static_cast<double>(q) / 100.0;
}

Result<LeaderboardResult> RunLeaderboard(const store::Store& store, const Clock& clock,
                                         const LeaderboardRequest& req) {
  if (req.from.has_value() != req.to.has_value()) {
    const char* missing = req.from ? "date_to" : "date_from";
    return Fail(ErrorCode::kInvalidArgument,
                std::string("The ") + (req.from ? "date to" : "date from") +
                    " field is required when " + (req.from ? "date from" : "date to") +
                    " is present.",
                missing);
  }
  if (req.limit < 1 || req.limit > 100) {
    return Fail(ErrorCode::kInvalidArgument, "The limit field must be between 1 and 100.", "limit");
  }
  LeaderboardResult out;
  if (req.from) {
    out.from = *req.from;
    out.to = *req.to;
  } else {
    out.to = clock.Today();
    out.from = out.to - 29;
  }
  if (out.from > out.to) {
    return Fail(ErrorCode::kInvalidArgument,
                "The date to field must be a date after or equal to date from.", "date_to");
  }
  const int32_t days = out.to - out.from + 1;
  if (days > kLeaderboardMaxDays) {
    return Fail(
        ErrorCode::kInvalidArgument,
        "The date range must not be longer than " + std::to_string(kLeaderboardMaxDays) + " days.",
        "date_from");
  }
  out.previous_to = out.from - 1;
  out.previous_from = out.from - days;

  auto view = store.NewReadView();
  const std::string& ws = req.workspace_id;
  std::unordered_map<uint32_t, Counts> counts;
  if (req.user_ids.empty()) {
    counts.reserve(256);
    ScanUsers(*view, ws, out.from, out.to, &Counts::current, &counts);
    ScanUsers(*view, ws, out.previous_from, out.previous_to, &Counts::previous, &counts);
  } else {
    // A short filter list: point reads per user beat scanning every user of the workspace.
    for (const std::string& id : req.user_ids) {
      uint32_t index;
      if (!view->LookupUser(id, &index) || counts.contains(index)) continue;
      Counts c{SumUser(*view, ws, index, out.from, out.to),
               SumUser(*view, ws, index, out.previous_from, out.previous_to)};
      if (c.current != 0 || c.previous != 0) counts.emplace(index, c);
    }
  }

  struct Item {
    uint32_t index;
    Counts counts;
    std::string user_id;  // resolved only for rows returned or tied with the cut
  };
  std::vector<Item> items;
  items.reserve(counts.size());
  for (const auto& [index, c] : counts) items.push_back({index, c, {}});
  std::sort(items.begin(), items.end(),
            [](const Item& a, const Item& b) { return a.counts.current > b.counts.current; });
  const size_t n = std::min(items.size(), static_cast<size_t>(req.limit));
  if (n == 0) return out;
  // Everything tied with the last returned row competes for the cut on user id.
  size_t hi = n;
  while (hi < items.size() && items[hi].counts.current == items[n - 1].counts.current) ++hi;
  for (size_t i = 0; i < hi; ++i) view->UserIdOf(items[i].index, &items[i].user_id);
  std::sort(items.begin(), items.begin() + hi, [](const Item& a, const Item& b) {
    if (a.counts.current != b.counts.current) return a.counts.current > b.counts.current;
    return a.user_id < b.user_id;
  });

  out.rows.reserve(n);
  std::string key;
  size_t group_start = 0;
  for (size_t i = 0; i < n; ++i) {
    Item& it = items[i];
    if (it.counts.current != items[group_start].counts.current) group_start = i;
    LeaderboardRow row;
    row.rank = static_cast<int64_t>(group_start) + 1;
    row.agent_count = it.counts.current;
    row.agent_count_previous_period = it.counts.previous;
    if (it.counts.previous > 0) {
      row.growth_percentage = GrowthPercentage(it.counts.current, it.counts.previous);
    }
    store::UserProfileKey(ws, it.user_id, &key);
    store::Record profile;
    if (view->GetRecord(key, &profile)) {
      row.name = NonEmpty(profile, store::field::kUserName);
      row.photo = NonEmpty(profile, store::field::kUserPhoto);
    }
    row.user_id = std::move(it.user_id);
    out.rows.push_back(std::move(row));
  }
  return out;
}

Result<std::string> ResolveWorkspaceByOrganization(const store::Store& store,
                                                   std::string_view organization) {
  auto view = store.NewReadView();
  const std::string prefix = store::WorkspacePrefix();
  std::string found;
  int matches = 0;
  view->ScanRecords(prefix, [&](std::string_view key, const store::Record& r) {
    const store::Field* f = store::FindField(r, store::field::kWorkspaceOrganization);
    if (!f || f->value != organization) return true;
    std::string_view rest = key.substr(prefix.size());
    std::string_view ws;
    if (!store::GetLengthPrefixed(&rest, &ws) || !rest.empty()) return true;
    if (++matches == 1) found.assign(ws);
    return matches < 2;  // a second match settles it
  });
  if (matches == 0) return Fail(ErrorCode::kNotFound, "Workspace not found");
  if (matches > 1) {
    return Fail(ErrorCode::kInvalidArgument,
                "The organization multiplai id matches several workspaces; pass workspace_uuid.",
                "organization_multiplai_id");
  }
  return found;
}

}  // namespace tally::query
