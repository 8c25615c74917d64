#include <algorithm>
#include <cstdio>
#include <iterator>
#include <span>

#include "store/stage_test_model.h"

namespace tally::store::stage_test {

std::string Hex(std::string_view s) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char ch : s) {
    out += kDigits[ch >> 4];
    out += kDigits[ch & 15];
  }
  return out;
}

std::string Text(const Counters& c) {
  std::string out;
  char buf[64];
  for (int k = 0; k < Counters::kInts; ++k) {
    if (c.i[k] == 0) continue;
    std::snprintf(buf, sizeof buf, " i%d=%lld", k, static_cast<long long>(c.i[k]));
    out += buf;
  }
  for (int k = 0; k < Counters::kDoubles; ++k) {
    if (c.d[k] == 0) continue;
    std::snprintf(buf, sizeof buf, " d%d=%.17g", k, c.d[k]);
    out += buf;
  }
  return out.empty() ? " zero" : out;
}

std::string PackText(const std::map<uint32_t, Counters>& users, bool ordered) {
  std::string out = ordered ? "" : " UNORDERED";
  for (const auto& [user, c] : users) out += " u" + std::to_string(user) + ":" + Text(c) + ";";
  return out;
}

std::string BitmapText(const std::vector<uint32_t>& ids) {
  std::string out = " n=" + std::to_string(ids.size()) + ":";
  for (uint32_t id : ids) out += " " + std::to_string(id);
  return out;
}

std::string BitmapText(const UserBitmap& b) {
  std::vector<uint32_t> ids;
  b.ForEach([&](uint32_t id) { ids.push_back(id); });
  return BitmapText(ids);
}

std::string RecordText(const Record& r) {
  std::string out;
  for (const Field& f : r) {
    out += " f" + std::to_string(f.id) + "@" + std::to_string(f.time_ms) + "=" + f.value;
  }
  return out.empty() ? " empty" : out;
}

std::string SliceText(const SliceTotals& t, const std::vector<SliceUser>& users,
                      const std::vector<SliceAgent>& agents) {
  std::string out = " r" + std::to_string(t.requests) + " e" + std::to_string(t.errors) + " t" +
                    std::to_string(t.tokens) + " c" + std::to_string(t.cost_nanos) + " users:";
  for (const SliceUser& u : users) {
    out += " " + std::to_string(u.user) + "/" + std::to_string(u.requests) + "/" +
           std::to_string(u.tokens) + "/" + std::to_string(u.cost_nanos);
  }
  out += " agents:";
  for (const SliceAgent& a : agents) {
    out += " " + std::to_string(a.agent) + "/" + std::to_string(a.requests) + "/" +
           std::to_string(a.tokens);
  }
  return out;
}

std::string SliceText(const SliceView& s) {
  std::vector<SliceUser> users;
  for (size_t i = 0; i < s.user_count(); ++i) users.push_back(s.user(i));
  std::vector<SliceAgent> agents;
  for (size_t i = 0; i < s.agent_count(); ++i) agents.push_back(s.agent(i));
  return SliceText(s.totals(), users, agents);
}

std::string Found(bool found) { return found ? " found" : " absent"; }

std::string LimitText(size_t limit) { return limit == SIZE_MAX ? "all" : std::to_string(limit); }

void ExpectSameLines(const Lines& want, const Lines& got, const std::string& what) {
  if (want == got) return;
  const std::multiset<std::string> w(want.begin(), want.end()), g(got.begin(), got.end());
  std::vector<std::string> missing, extra;
  std::set_difference(w.begin(), w.end(), g.begin(), g.end(), std::back_inserter(missing));
  std::set_difference(g.begin(), g.end(), w.begin(), w.end(), std::back_inserter(extra));
  std::string msg = what + ": " + std::to_string(missing.size()) + " lines missing, " +
                    std::to_string(extra.size()) + " unexpected" +
                    (missing.empty() && extra.empty() ? " (same lines, other order)" : "");
  for (size_t i = 0; i < missing.size() && i < 8; ++i) msg += "\n  want: " + missing[i];
  for (size_t i = 0; i < extra.size() && i < 8; ++i) msg += "\n  got:  " + extra[i];
  ADD_FAILURE() << msg;
}

// The ids of the model's bitmap at `key` (none if absent), in order.
std::vector<uint32_t> ModelBitmapIds(const Model& m, const std::string& key) {
  auto it = m.bitmaps.find(key);
  return it == m.bitmaps.end() ? std::vector<uint32_t>{}
                               : std::vector<uint32_t>(it->second.begin(), it->second.end());
}

// ViewLines of counters and user packs.
void AppendCounterViewLines(const ReadView& v, const Universe& u, Lines* lines) {
  Lines& out = *lines;
  for (const std::string& key : u.counters) {
    Counters c;
    const bool found = v.AddCounters(key, &c);
    out.push_back("AddCounters " + Hex(key) + Found(found) + (found ? Text(c) : ""));
  }
  for (size_t p = 0; p < u.counter_prefixes.size(); ++p) {
    int n = 0;
    v.ScanCounters(u.counter_prefixes[p], [&](std::string_view suffix, const Counters& c) {
      out.push_back("ScanCounters#" + std::to_string(p) + " " + std::to_string(n++) + " " +
                    Hex(suffix) + Text(c));
    });
  }
  for (const std::string& key : u.packs) {
    std::string pack;
    std::map<uint32_t, Counters> users;
    bool ordered = true;
    const bool found = v.GetUserPack(key, &pack);
    int64_t last = -1;
    ForEachUserPackEntry(pack, [&](uint32_t user, std::string_view encoded) {
      ordered = ordered && static_cast<int64_t>(user) > last;
      last = user;
      AddEncodedCounters(encoded, &users[user]);
    });
    out.push_back("GetUserPack " + Hex(key) + Found(found) + PackText(users, ordered));

    users.clear();
    const bool has_parts = v.ForEachUserPackPart(key, [&](std::string_view part) {
      ForEachUserPackEntry(part, [&](uint32_t user, std::string_view encoded) {
        AddEncodedCounters(encoded, &users[user]);
      });
    });
    out.push_back("ForEachUserPackPart " + Hex(key) + Found(has_parts) + PackText(users));

    users.clear();
    v.ForEachUserCounters(key,
                          [&](uint32_t user, const Counters& c) { Model::Add(c, &users[user]); });
    out.push_back("ForEachUserCounters " + Hex(key) + PackText(users));

    for (uint32_t user = 0; user <= u.pack_users; ++user) {
      Counters c;
      const bool pack_found = v.AddUserCounters(key, user, &c);
      out.push_back("AddUserCounters " + Hex(key) + " u" + std::to_string(user) +
                    Found(pack_found) + Text(c));
    }
  }
}

// ViewLines of bitmaps and slices.
void AppendBitmapAndSliceViewLines(const ReadView& v, const Universe& u, Lines* lines) {
  Lines& out = *lines;
  for (const std::string& key : u.bitmaps) {
    UserBitmap b;
    const bool found = v.OrBitmap(key, &b);
    out.push_back("OrBitmap " + Hex(key) + Found(found) + BitmapText(b));
  }
  const std::vector<uint64_t> unions = v.UnionCardinalities(u.union_groups);
  for (size_t g = 0; g < unions.size(); ++g) {
    out.push_back("UnionCardinalities#" + std::to_string(g) + " " + std::to_string(unions[g]));
  }
  for (const std::string& key : u.slices) {
    std::string text;
    const bool found = v.ReadSlice(key, [&](const SliceView& s) { text = SliceText(s); });
    out.push_back("ReadSlice " + Hex(key) + Found(found) + text);
  }
  for (const std::string& key : u.slices) {
    // The parts, summed, are the slice.
    Slice sum;
    const bool found = v.ReadSliceParts(key, [&](const SliceView& part) {
      Slice one;
      one.totals = part.totals();
      for (size_t i = 0; i < part.user_count(); ++i) one.users.push_back(part.user(i));
      for (size_t i = 0; i < part.agent_count(); ++i) one.agents.push_back(part.agent(i));
      sum.Append(one);
    });
    sum.Normalize();
    out.push_back("ReadSliceParts " + Hex(key) + Found(found) +
                  (found ? SliceText(sum.totals, sum.users, sum.agents) : ""));
  }
  for (size_t i = 0; i < u.slice_scans.size(); ++i) {
    const Universe::SliceScan& scan = u.slice_scans[i];
    size_t n = 0;
    v.ScanSlices(scan.prefix, scan.start, [&](std::string_view key, const SliceView& s) {
      out.push_back("ScanSlices#" + std::to_string(i) + " " + std::to_string(n) + " " + Hex(key) +
                    SliceText(s));
      return ++n < scan.limit;
    });
    n = 0;
    v.ScanSliceKeys(scan.prefix, scan.start, [&](std::string_view key) {
      out.push_back("ScanSliceKeys#" + std::to_string(i) + " " + std::to_string(n) + " " +
                    Hex(key));
      return ++n < scan.limit;
    });
  }
  for (const std::string& prefix : u.slice_prefixes) {
    out.push_back("HasSliceWithPrefix " + Hex(prefix) + Found(v.HasSliceWithPrefix(prefix)));
  }
}

// ViewLines of records, merge scans and the user dictionary.
void AppendRecordAndUserViewLines(const ReadView& v, const Universe& u, Lines* lines) {
  Lines& out = *lines;
  for (const std::string& key : u.records) {
    Record r;
    const bool found = v.GetRecord(key, &r);
    out.push_back("GetRecord " + Hex(key) + Found(found) + (found ? RecordText(r) : ""));
  }
  for (size_t p = 0; p < u.record_prefixes.size(); ++p) {
    for (size_t limit : {size_t{2}, SIZE_MAX}) {
      const std::string scan = "#" + std::to_string(p) + "/" + LimitText(limit) + " ";
      size_t n = 0;
      v.ScanRecords(u.record_prefixes[p], [&](std::string_view key, const Record& r) {
        out.push_back("ScanRecords" + scan + std::to_string(n) + " " + Hex(key) + RecordText(r));
        return ++n < limit;
      });
      n = 0;
      v.ScanEncodedRecords(u.record_prefixes[p], [&](std::string_view key, std::string_view enc) {
        Record r;
        const bool ok = DecodeRecord(enc, &r);
        out.push_back("ScanEncodedRecords" + scan + std::to_string(n) + " " + Hex(key) +
                      (ok ? "" : " MALFORMED") + RecordText(r));
        return ++n < limit;
      });
    }
  }
  for (size_t i = 0; i < u.counter_merge_scans.size(); ++i) {
    v.MergeScanCounters(u.counter_merge_scans[i], [&](std::string_view suffix,
                                                      std::span<const ReadView::ScanRow> rows) {
      std::string line = "MergeScanCounters#" + std::to_string(i) + " " + Hex(suffix);
      for (const ReadView::ScanRow& row : rows) {
        Counters c;
        const bool ok = AddEncodedCounters(row.value, &c);
        line += " [" + std::to_string(row.prefix) + (ok ? "" : " MALFORMED") + Text(c) + "]";
      }
      out.push_back(line);
    });
  }
  for (size_t i = 0; i < u.bitmap_merge_scans.size(); ++i) {
    v.MergeScanBitmaps(u.bitmap_merge_scans[i], [&](std::string_view suffix,
                                                    std::span<const ReadView::ScanRow> rows) {
      std::string line = "MergeScanBitmaps#" + std::to_string(i) + " " + Hex(suffix);
      for (const ReadView::ScanRow& row : rows) {
        UserBitmap b;
        const bool ok = b.OrEncoded(row.value);
        line += " [" + std::to_string(row.prefix) + (ok ? "" : " MALFORMED") + BitmapText(b) + "]";
      }
      out.push_back(line);
    });
  }
  for (const std::string& id : u.user_ids) {
    uint32_t index = 0;
    const bool found = v.LookupUser(id, &index);
    out.push_back("LookupUser " + id + Found(found) + (found ? " " + std::to_string(index) : ""));
  }
  for (uint32_t index = 0; index <= u.user_indexes; ++index) {
    std::string id;
    const bool found = v.UserIdOf(index, &id);
    out.push_back("UserIdOf " + std::to_string(index) + Found(found) + " " + id);
  }
}

Lines ViewLines(const ReadView& v, const Universe& u) {
  Lines out;
  AppendCounterViewLines(v, u, &out);
  AppendBitmapAndSliceViewLines(v, u, &out);
  AppendRecordAndUserViewLines(v, u, &out);
  return out;
}

std::string IndexText(const Result<std::optional<uint32_t>>& r) {
  if (!r) return " ERROR " + r.error().message;
  return *r ? " " + std::to_string(**r) : " absent";
}

Lines WriterLines(const Store& s, const Universe& u) {
  Lines out;
  for (const std::string& id : u.user_ids) {
    out.push_back("LookupUserIndex " + id + IndexText(s.LookupUserIndex(id)));
  }
  for (const auto& [ws, agent] : u.agents) {
    out.push_back("LookupAgentIndex " + ws + "/" + agent +
                  IndexText(s.LookupAgentIndex(ws, agent)));
  }
  for (uint32_t agent = 0; agent < 4; ++agent) {
    for (uint32_t user = 0; user < 5; ++user) {
      out.push_back("LookupPairIndex " + std::to_string(agent) + "/" + std::to_string(user) +
                    IndexText(s.LookupPairIndex(agent, user)));
    }
  }
  if (auto next = s.LoadDictionaryNext(); next) {
    out.push_back("LoadDictionaryNext " + std::to_string(next->user) + " " +
                  std::to_string(next->agent) + " " + std::to_string(next->pair));
  } else {
    out.push_back("LoadDictionaryNext ERROR " + next.error().message);
  }
  std::vector<std::string_view> keys(u.dedupe.begin(), u.dedupe.end());
  std::sort(keys.begin(), keys.end());
  std::vector<uint8_t> stored;
  if (auto st = s.FindDedupeKeys(keys, &stored); !st) {
    out.push_back("FindDedupeKeys ERROR " + st.error().message);
  }
  for (size_t i = 0; i < keys.size() && i < stored.size(); ++i) {
    out.push_back("FindDedupeKeys " + Hex(keys[i]) + Found(stored[i] != 0));
  }
  int n = 0;
  if (auto st = s.ScanDedupeKeys([&](std::string_view key) {
        out.push_back("ScanDedupeKeys " + std::to_string(n++) + " " + Hex(key));
        return true;
      });
      !st) {
    out.push_back("ScanDedupeKeys ERROR " + st.error().message);
  }
  n = 0;
  if (auto st = s.ScanWorkspaceRecords([&](std::string_view ws, const Record& r) {
        out.push_back("ScanWorkspaceRecords " + std::to_string(n++) + " " + std::string(ws) +
                      RecordText(r));
      });
      !st) {
    out.push_back("ScanWorkspaceRecords ERROR " + st.error().message);
  }
  if (auto offsets = s.LoadOffsets(); offsets) {
    for (const Store::OffsetEntry& e : *offsets) {
      out.push_back("LoadOffsets " + e.topic + "/" + std::to_string(e.partition) + " " +
                    e.offset.cluster_id + " " + std::to_string(e.offset.next_offset));
    }
  } else {
    out.push_back("LoadOffsets ERROR " + offsets.error().message);
  }
  return out;
}

// ModelViewLines of counters and user packs.
void AppendModelCounterViewLines(const Model& m, const Universe& u, Lines* lines) {
  Lines& out = *lines;
  for (const std::string& key : u.counters) {
    auto it = m.counters.find(key);
    const bool found = it != m.counters.end();
    out.push_back("AddCounters " + Hex(key) + Found(found) + (found ? Text(it->second) : ""));
  }
  for (size_t p = 0; p < u.counter_prefixes.size(); ++p) {
    const std::string& prefix = u.counter_prefixes[p];
    int n = 0;
    ScanModel(m.counters, prefix, "", [&](const std::string& key, const Counters& c) {
      out.push_back("ScanCounters#" + std::to_string(p) + " " + std::to_string(n++) + " " +
                    Hex(std::string_view(key).substr(prefix.size())) + Text(c));
      return true;
    });
  }
  for (const std::string& key : u.packs) {
    auto it = m.packs.find(key);
    const bool found = it != m.packs.end();
    const std::map<uint32_t, Counters> none;
    const auto& users = found ? it->second : none;
    out.push_back("GetUserPack " + Hex(key) + Found(found) + PackText(users));
    out.push_back("ForEachUserPackPart " + Hex(key) + Found(found) + PackText(users));
    out.push_back("ForEachUserCounters " + Hex(key) + PackText(users));
    for (uint32_t user = 0; user <= u.pack_users; ++user) {
      auto c = users.find(user);
      out.push_back("AddUserCounters " + Hex(key) + " u" + std::to_string(user) + Found(found) +
                    Text(c == users.end() ? Counters{} : c->second));
    }
  }
}

// ModelViewLines of bitmaps and slices.
void AppendModelBitmapAndSliceViewLines(const Model& m, const Universe& u, Lines* lines) {
  Lines& out = *lines;
  auto ids = [&](const std::string& key) { return ModelBitmapIds(m, key); };
  for (const std::string& key : u.bitmaps) {
    out.push_back("OrBitmap " + Hex(key) + Found(m.bitmaps.contains(key)) + BitmapText(ids(key)));
  }
  for (size_t g = 0; g < u.union_groups.size(); ++g) {
    std::set<uint32_t> all;
    for (const std::string& key : u.union_groups[g]) {
      for (uint32_t id : ids(key)) all.insert(id);
    }
    out.push_back("UnionCardinalities#" + std::to_string(g) + " " + std::to_string(all.size()));
  }
  for (const std::string& key : u.slices) {
    auto it = m.slices.find(key);
    const bool found = it != m.slices.end();
    out.push_back("ReadSlice " + Hex(key) + Found(found) +
                  (found ? m.SliceTextOf(it->second) : ""));
  }
  for (const std::string& key : u.slices) {
    auto it = m.slices.find(key);
    const bool found = it != m.slices.end();
    out.push_back("ReadSliceParts " + Hex(key) + Found(found) +
                  (found ? m.SliceTextOf(it->second) : ""));
  }
  for (size_t i = 0; i < u.slice_scans.size(); ++i) {
    const Universe::SliceScan& scan = u.slice_scans[i];
    size_t n = 0;
    ScanModel(m.slices, scan.prefix, scan.start.empty() ? scan.prefix : scan.start,
              [&](const std::string& key, const Model::SliceSum& s) {
                out.push_back("ScanSlices#" + std::to_string(i) + " " + std::to_string(n) + " " +
                              Hex(key) + m.SliceTextOf(s));
                return ++n < scan.limit;
              });
    n = 0;
    ScanModel(m.slices, scan.prefix, scan.start.empty() ? scan.prefix : scan.start,
              [&](const std::string& key, const Model::SliceSum&) {
                out.push_back("ScanSliceKeys#" + std::to_string(i) + " " + std::to_string(n) + " " +
                              Hex(key));
                return ++n < scan.limit;
              });
  }
  for (const std::string& prefix : u.slice_prefixes) {
    bool found = false;
    ScanModel(m.slices, prefix, "", [&](const std::string&, const Model::SliceSum&) {
      found = true;
      return false;
    });
    out.push_back("HasSliceWithPrefix " + Hex(prefix) + Found(found));
  }
}

// ModelViewLines of records, merge scans and the user dictionary.
void AppendModelRecordAndUserViewLines(const Model& m, const Universe& u, Lines* lines) {
  Lines& out = *lines;
  auto ids = [&](const std::string& key) { return ModelBitmapIds(m, key); };
  for (const std::string& key : u.records) {
    auto it = m.records.find(key);
    const bool found = it != m.records.end();
    out.push_back("GetRecord " + Hex(key) + Found(found) +
                  (found ? RecordText(m.RecordOf(it->second)) : ""));
  }
  for (size_t p = 0; p < u.record_prefixes.size(); ++p) {
    for (size_t limit : {size_t{2}, SIZE_MAX}) {
      const std::string scan = "#" + std::to_string(p) + "/" + LimitText(limit) + " ";
      for (const char* method : {"ScanRecords", "ScanEncodedRecords"}) {
        size_t n = 0;
        ScanModel(m.records, u.record_prefixes[p], "", [&](const std::string& key, const auto& r) {
          out.push_back(method + scan + std::to_string(n) + " " + Hex(key) +
                        RecordText(m.RecordOf(r)));
          return ++n < limit;
        });
      }
    }
  }
  // Merge scans: for each suffix under any prefix, in order, the rows of the prefixes holding it.
  auto merge_scan = [&](const auto& rows, const std::vector<std::string>& prefixes,
                        const std::string& name, auto&& text) {
    std::set<std::string> suffixes;
    for (const std::string& prefix : prefixes) {
      ScanModel(rows, prefix, "", [&](const std::string& key, const auto&) {
        suffixes.insert(key.substr(prefix.size()));
        return true;
      });
    }
    for (const std::string& suffix : suffixes) {
      std::string line = name + " " + Hex(suffix);
      for (size_t k = 0; k < prefixes.size(); ++k) {
        auto it = rows.find(prefixes[k] + suffix);
        if (it != rows.end()) line += " [" + std::to_string(k) + text(it->first) + "]";
      }
      out.push_back(line);
    }
  };
  for (size_t i = 0; i < u.counter_merge_scans.size(); ++i) {
    merge_scan(m.counters, u.counter_merge_scans[i], "MergeScanCounters#" + std::to_string(i),
               [&](const std::string& key) { return Text(m.counters.at(key)); });
  }
  for (size_t i = 0; i < u.bitmap_merge_scans.size(); ++i) {
    merge_scan(m.bitmaps, u.bitmap_merge_scans[i], "MergeScanBitmaps#" + std::to_string(i),
               [&](const std::string& key) { return BitmapText(ids(key)); });
  }
  for (const std::string& id : u.user_ids) {
    auto it = m.users.find(id);
    const bool found = it != m.users.end();
    out.push_back("LookupUser " + id + Found(found) +
                  (found ? " " + std::to_string(it->second) : ""));
  }
  for (uint32_t index = 0; index <= u.user_indexes; ++index) {
    auto it = m.user_ids.find(index);
    const bool found = it != m.user_ids.end();
    out.push_back("UserIdOf " + std::to_string(index) + Found(found) + " " +
                  (found ? it->second : ""));
  }
}

Lines ModelViewLines(const Model& m, const Universe& u) {
  Lines out;
  AppendModelCounterViewLines(m, u, &out);
  AppendModelBitmapAndSliceViewLines(m, u, &out);
  AppendModelRecordAndUserViewLines(m, u, &out);
  return out;
}

Lines ModelWriterLines(const Model& m, const Universe& u) {
  Lines out;
  auto index = [](const auto& map, const auto& key) {
    auto it = map.find(key);
    return it == map.end() ? std::string(" absent") : " " + std::to_string(it->second);
  };
  for (const std::string& id : u.user_ids) {
    out.push_back("LookupUserIndex " + id + index(m.users, id));
  }
  for (const auto& agent : u.agents) {
    out.push_back("LookupAgentIndex " + agent.first + "/" + agent.second + index(m.agents, agent));
  }
  for (uint32_t agent = 0; agent < 4; ++agent) {
    for (uint32_t user = 0; user < 5; ++user) {
      out.push_back("LookupPairIndex " + std::to_string(agent) + "/" + std::to_string(user) +
                    index(m.pairs, std::pair{agent, user}));
    }
  }
  out.push_back("LoadDictionaryNext " + std::to_string(m.next.user) + " " +
                std::to_string(m.next.agent) + " " + std::to_string(m.next.pair));
  std::vector<std::string> keys = u.dedupe;
  std::sort(keys.begin(), keys.end());
  for (const std::string& key : keys) {
    out.push_back("FindDedupeKeys " + Hex(key) + Found(m.dedupe.contains(key)));
  }
  int n = 0;
  for (const std::string& key : m.dedupe) {
    out.push_back("ScanDedupeKeys " + std::to_string(n++) + " " + Hex(key));
  }
  n = 0;
  ScanModel(m.records, WorkspacePrefix(), "", [&](const std::string& key, const auto& r) {
    std::string_view ws;
    if (DecodeWorkspaceKey(key, &ws)) {
      out.push_back("ScanWorkspaceRecords " + std::to_string(n++) + " " + std::string(ws) +
                    RecordText(m.RecordOf(r)));
    }
    return true;
  });
  for (const auto& [key, offset] : m.offsets) {
    std::string topic;
    int32_t partition = 0;
    DecodeOffsetKey(key, &topic, &partition);
    out.push_back("LoadOffsets " + topic + "/" + std::to_string(partition) + " " +
                  offset.cluster_id + " " + std::to_string(offset.next_offset));
  }
  return out;
}
}  // namespace tally::store::stage_test
