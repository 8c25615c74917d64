#include "gen/generator.h"

#include <array>
#include <charconv>
#include <cmath>
#include <string_view>
#include <utility>

#include "gen/internal/generator_impl.h"

namespace tally::gen {
namespace {

constexpr std::array<std::string_view, 4> kVisibilities = {
    "private", "workspace", "public_with_login", "public_without_login"};
// Per-token price of an agent's model (USD), by entity index.
constexpr std::array<double, 3> kTokenPrice = {0.000002, 0.00001, 0.00003};

constexpr const char* TypeName(Kind k, Act a) {
  constexpr const char* kAgentTypes[] = {"agent.created",  "agent.updated", "agent.deleted",
                                         "agent.executed", "agent.copied",  "agent.shared"};
  constexpr const char* kWorkflowTypes[] = {"workflow.created", "workflow.updated",
                                            "workflow.deleted", "workflow.executed",
                                            "workflow.copied",  "workflow.shared"};
  return k == Kind::kAgent ? kAgentTypes[static_cast<int>(a)] : kWorkflowTypes[static_cast<int>(a)];
}

void AppendInt(std::string* out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, r.ptr);
}

// Shortest round-trip form, like JsonWriter::Double (finite, non-negative values only here).
void AppendDouble(std::string* out, double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, r.ptr);
}

void Append2(char* p, int v) {
  p[0] = static_cast<char>('0' + v / 10);
  p[1] = static_cast<char>('0' + v % 10);
}

// RFC 3339 with milliseconds; "Z" when offset_min is 0, "+HH:MM"/"-HH:MM" otherwise.
void FormatTime(int64_t utc_ms, int offset_min, std::string* out) {
  int64_t local = utc_ms + static_cast<int64_t>(offset_min) * 60'000;
  int64_t day = local >= 0 ? local / kDayMs : (local - kDayMs + 1) / kDayMs;
  int64_t ms_of_day = local - day * kDayMs;
  CivilDate c = CivilFromDays(static_cast<DayNumber>(day));
  char buf[32];
  int y = c.year;
  buf[0] = static_cast<char>('0' + y / 1000 % 10);
  buf[1] = static_cast<char>('0' + y / 100 % 10);
  Append2(buf + 2, y % 100);
  buf[4] = '-';
  Append2(buf + 5, static_cast<int>(c.month));
  buf[7] = '-';
  Append2(buf + 8, static_cast<int>(c.day));
  buf[10] = 'T';
  int secs = static_cast<int>(ms_of_day / 1000);
  int ms = static_cast<int>(ms_of_day % 1000);
  Append2(buf + 11, secs / 3600);
  buf[13] = ':';
  Append2(buf + 14, secs / 60 % 60);
  buf[16] = ':';
  Append2(buf + 17, secs % 60);
  buf[19] = '.';
  buf[20] = static_cast<char>('0' + ms / 100);
  Append2(buf + 21, ms % 100);
  size_t n = 23;
  if (offset_min == 0) {
    buf[n++] = 'Z';
  } else {
    int a = offset_min < 0 ? -offset_min : offset_min;
    buf[n++] = offset_min < 0 ? '-' : '+';
    Append2(buf + n, a / 60);
    n += 2;
    buf[n++] = ':';
    Append2(buf + n, a % 60);
    n += 2;
  }
  out->append(buf, n);
}

}  // namespace

int64_t Generator::Impl::TimeOfLine(int64_t n) {
  while (cur_day_ + 1 < day_end_.size() && n >= day_end_[cur_day_]) ++cur_day_;
  int64_t begin = cur_day_ == 0 ? 0 : day_end_[cur_day_ - 1];
  int64_t count = std::max<int64_t>(1, day_end_[cur_day_] - begin);
  double x = (static_cast<double>(n - begin) + rng_.Uniform()) / static_cast<double>(count);
  x = std::clamp(x, 0.0, 1.0);
  // Density 1 - 0.6 cos(2 pi x): quiet at midnight UTC, busiest at noon; monotone in x.
  double y = x - 0.6 * std::sin(2 * std::numbers::pi * x) / (2 * std::numbers::pi);
  int64_t span = cur_day_ + 1 == day_end_.size() ? last_day_span_ms_ : kDayMs;
  int64_t offset = std::min<int64_t>(static_cast<int64_t>(y * static_cast<double>(span)), span - 1);
  return static_cast<int64_t>(start_day_ + static_cast<int64_t>(cur_day_)) * kDayMs + offset;
}

int Generator::Impl::SampleEntity(Kind k) {
  int kk = static_cast<int>(k);
  const auto& list = entities_[kk];
  for (int attempt = 0; attempt < 8; ++attempt) {
    size_t i = SampleCdf(entity_cdf_[kk], static_cast<size_t>(born_[kk]), rng_.Uniform());
    if (!list[i].deleted) return static_cast<int>(i);
  }
  return 0;  // index 0 is never deleted
}

void Generator::Impl::MaybeRenameUser(int u) {
  if (!rng_.Chance(0.0005)) return;
  User& user = users_[u];
  ++user.version;
  std::string_view first(user.name.data(), user.name.find(' '));
  std::string_view last = kLastNames[rng_.Below(kLastNames.size())];
  user.name = std::string(first) + " " + std::string(last);
  user.photo = "https://example.com/u/" + user.id + ".jpg?v=" + std::to_string(user.version);
  user.Render();
}

// Creates or copies the next entity if the birth schedule is behind; false otherwise.
bool Generator::Impl::Birth(Spec* s) {
  int64_t born = born_[0] + born_[1];
  if (born >= total_entities_) return false;
  double progress = static_cast<double>(n_) / (0.9 * static_cast<double>(opt_.events));
  int64_t target = initial_entities_ +
                   static_cast<int64_t>(std::min(1.0, progress) *
                                        static_cast<double>(total_entities_ - initial_entities_));
  if (born >= target) return false;
  // Keep both kinds at the same fraction of their totals.
  double fa = entities_[0].empty() ? 2 : static_cast<double>(born_[0]) / entities_[0].size();
  double ff = entities_[1].empty() ? 2 : static_cast<double>(born_[1]) / entities_[1].size();
  Kind k = fa <= ff ? Kind::kAgent : Kind::kWorkflow;
  int kk = static_cast<int>(k);
  int idx = born_[kk]++;
  Entity& e = entities_[kk][idx];
  Workspace& w = ws_[e.ws];
  s->kind = k;
  s->entity = idx;
  s->act = Act::kCreated;
  s->user = e.owner;
  if (!w.born[kk].empty() && rng_.Chance(0.15)) {
    const Entity& src = entities_[kk][w.born[kk][rng_.Below(w.born[kk].size())]];
    s->act = Act::kCopied;
    e.owner = SampleMember(e.ws);
    s->user = e.owner;
    e.name = "Copy of " + src.name;
    e.quoted_name = Quoted(e.name);
    e.visibility = src.visibility;
  }
  w.born[kk].push_back(idx);
  return true;
}

void Generator::Impl::Regular(Spec* s) {
  s->kind = PickKind();
  int kk = static_cast<int>(s->kind);
  double r = rng_.Uniform();
  s->act = r < 0.90    ? Act::kExecuted
           : r < 0.945 ? Act::kUpdated
           : r < 0.99  ? Act::kShared
                       : Act::kDeleted;
  if (s->act == Act::kDeleted) {
    s->act = Act::kExecuted;
    // Only late, and only among the less used (younger) entities.
    int lo = std::max(1, born_[kk] / 5);
    if (n_ > opt_.events * 7 / 10 && born_[kk] > lo) {
      for (int attempt = 0; attempt < 4; ++attempt) {
        int i = lo + static_cast<int>(rng_.Below(static_cast<uint64_t>(born_[kk] - lo)));
        if (!entities_[kk][i].deleted) {
          s->act = Act::kDeleted;
          s->entity = i;
          break;
        }
      }
    }
  }
  if (s->act != Act::kDeleted) s->entity = SampleEntity(s->kind);
  Entity& e = entities_[kk][s->entity];
  s->user = (s->act == Act::kUpdated || s->act == Act::kDeleted) && rng_.Chance(0.7)
                ? e.owner
                : SampleMember(e.ws);
  switch (s->act) {
    case Act::kUpdated:
      if (rng_.Chance(0.5)) {
        e.name = e.base_name + " v" + std::to_string(++e.updates + 1);
        e.quoted_name = Quoted(e.name);
      } else {
        e.visibility = (e.visibility + 1 + static_cast<int>(rng_.Below(3))) % 4;
      }
      break;
    case Act::kShared:
      if (e.visibility == 0 && rng_.Chance(0.5)) e.visibility = 1;
      break;
    case Act::kDeleted:
      e.deleted = true;
      break;
    default:
      break;
  }
  MaybeRenameUser(s->user);
}

// Executions mix: a Zipf-sampled agent run by a (Pareto-weighted) member of its workspace.
void Generator::Impl::Execution(Spec* s) {
  s->kind = Kind::kAgent;
  s->act = Act::kExecuted;
  s->entity = SampleEntity(Kind::kAgent);
  s->user = SampleMember(entities_[0][s->entity].ws);
  MaybeRenameUser(s->user);
}

void Generator::Impl::Write(const Spec& s, MalformedKind mk) {
  const Entity& e = entities_[static_cast<int>(s.kind)][s.entity];
  const Workspace& w = ws_[e.ws];
  const User& u = users_[s.user];
  // Fragments are appended directly and strings come pre-escaped (Quoted()): per-character
  // escaping of every field would halve the generator's throughput.
  // The executions mix carries every optional field; the default mix leaves some out.
  const bool full = opt_.mix == Mix::kExecutions;
  std::string& o = buf_;
  o.clear();
  o.append(mk == MalformedKind::kWrongSpecVersion ? "{\"specversion\":\"0.3\""
                                                  : "{\"specversion\":\"1.0\"");
  if (mk != MalformedKind::kMissingId) {
    o.append(",\"id\":\"evt_");
    AppendInt(&o, static_cast<int64_t>(opt_.seed));
    o.push_back('_');
    AppendInt(&o, opt_.first_id + n_);
    o.push_back('"');
  }
  bool executed = s.act == Act::kExecuted;
  o.append(",\"source\":");
  if (!executed) {
    o.append("\"athena/console\"");
  } else if (s.kind == Kind::kAgent) {
    o.append("\"athena/agents-api\"");
  } else {
    o.append(rng_.Chance(0.25) ? "\"athena/scheduler\"" : "\"athena/workflows\"");
  }
  o.append(",\"type\":\"");
  if (mk == MalformedKind::kUnknownType) {
    o.append(s.kind == Kind::kAgent ? "agent.exploded" : "workflow.vanished");
  } else {
    o.append(TypeName(s.kind, s.act));
  }
  o.append("\",\"time\":\"");
  if (mk == MalformedKind::kBadTime) {
    o.append(malformed_counter_ % 2 ? "yesterday" : "2026-13-45T10:23:45.123Z");
  } else {
    FormatTime(s.time_ms, s.offset_min, &o);
  }
  o.append("\",\"data\":{\"organization_id\":\"org_");
  AppendInt(&o, w.org + 1);
  o.push_back('"');
  if (mk != MalformedKind::kMissingWorkspaceId) {
    o.append(",\"workspace_id\":");
    o.append(w.quoted_id);
  }
  if (full || rng_.Chance(0.95)) {
    o.append(",\"project_id\":\"proj_");
    AppendInt(&o, e.project);
    o.push_back('"');
  }
  o.append(",\"user\":{");
  bool first = true;
  if (mk != MalformedKind::kMissingUserId) {
    o.append("\"id\":");
    o.append(u.quoted_id);
    first = false;
  }
  if (mk == MalformedKind::kOversized) {
    o.append(first ? "\"name\":\"" : ",\"name\":\"");
    o.append(70 * 1024, 'x');
    o.push_back('"');
  } else if (mk == MalformedKind::kMissingUserId || full || rng_.Chance(0.95)) {
    o.append(first ? "\"name\":" : ",\"name\":");
    o.append(u.quoted_name);
    o.append(",\"email\":");
    o.append(u.quoted_email);
    if (full || rng_.Chance(0.9)) {
      o.append(",\"photo\":");
      o.append(u.quoted_photo);
    }
  }
  o.append(s.kind == Kind::kAgent ? "},\"agent\":{" : "},\"workflow\":{");
  first = true;
  if (mk != MalformedKind::kMissingEntityId) {
    o.append("\"id\":");
    o.append(e.quoted_id);
    first = false;
  }
  // (The draw happens either way: --bare-executions changes nothing else in the stream.)
  const bool entity_fields = !executed || full || rng_.Chance(0.92);
  if (entity_fields && !(executed && opt_.bare_executions)) {
    o.append(first ? "\"name\":" : ",\"name\":");
    o.append(e.quoted_name);
    o.append(",\"visibility\":\"");
    o.append(kVisibilities[e.visibility]);
    o.append("\",\"owner_user_id\":");
    o.append(users_[e.owner].quoted_id);
  }
  o.push_back('}');
  AppendMeasures(s, mk, &o);
  o.append("}}");
}

void Generator::Impl::AppendMeasures(const Spec& s, MalformedKind mk, std::string* out) {
  const bool executed = s.act == Act::kExecuted;
  std::string& o = *out;
  if (executed && s.kind == Kind::kAgent) {
    bool error = rng_.Chance(0.03);
    int64_t tokens = std::llround(std::exp(6.5 + 1.0 * rng_.Normal()));
    if (error) tokens /= 4;
    double cost = std::round(static_cast<double>(tokens) * kTokenPrice[s.entity % 3] * 1e6) / 1e6;
    int64_t duration = std::llround(std::exp(7.0 + 0.8 * rng_.Normal()));
    o.append(",\"duration_ms\":");
    AppendInt(&o, duration);
    o.append(",\"tokens\":");
    if (mk == MalformedKind::kIllTypedField) {
      o.append("\"many\"");
    } else {
      AppendInt(&o, tokens);
    }
    o.append(",\"cost_usd\":");
    if (mk == MalformedKind::kNegativeNumber) {
      o.append("-1");
    } else {
      AppendDouble(&o, cost);
    }
    o.append(",\"message_credits\":");
    AppendInt(&o, 1 + tokens / 400);
    o.append(",\"integration_credits\":");
    AppendInt(&o, rng_.Chance(0.6) ? 0 : 1 + static_cast<int64_t>(rng_.Below(3)));
    o.append(error ? ",\"status\":\"error\"" : ",\"status\":\"ok\"");
  } else if (executed) {
    // Without agents, the agent-only malformations land on the workflow's duration.
    if (mk == MalformedKind::kIllTypedField) {
      o.append(",\"duration_ms\":\"long\"");
    } else if (mk == MalformedKind::kNegativeNumber) {
      o.append(",\"duration_ms\":-1");
    } else if (rng_.Chance(0.88)) {
      o.append(",\"duration_ms\":");
      AppendInt(&o, std::llround(std::exp(8.5 + 1.0 * rng_.Normal())));
    }
    o.append(rng_.Chance(0.02) ? ",\"status\":\"error\"" : ",\"status\":\"ok\"");
  }
}

void Generator::Impl::Malformed(MalformedKind mk, int64_t time_ms) {
  Spec s;
  s.time_ms = time_ms;
  // Agent executions carry every field a malformation needs (tokens, cost, agent.id); without
  // agents, Write() puts the agent-only malformations on the workflow.
  s.kind = entities_[0].empty() ? Kind::kWorkflow : Kind::kAgent;
  s.act = Act::kExecuted;
  int kk = static_cast<int>(s.kind);
  // Before the first birth, borrow entity 0's identity (the line is rejected anyway).
  s.entity = born_[kk] > 0 ? SampleEntity(s.kind) : 0;
  const Entity& e = entities_[kk][s.entity];
  s.user = SampleMember(e.ws);
  key_ = ws_[e.ws].id;
  switch (mk) {
    case MalformedKind::kNotAnObject:
      buf_.clear();
      switch (malformed_counter_ % 3) {
        case 0:
          buf_.append("[\"agent.executed\",");
          AppendJsonString(&buf_, e.id);
          buf_.push_back(']');
          break;
        case 1:
          AppendJsonString(&buf_, "agent " + e.id + " executed");
          break;
        default:
          AppendInt(&buf_, n_);
      }
      key_.clear();
      return;
    case MalformedKind::kInvalidJson: {
      Write(s, MalformedKind::kNone);
      size_t pos = buf_.find(",\"source\"");
      if (pos != std::string::npos) buf_.erase(pos, 1);
      key_.clear();
      return;
    }
    case MalformedKind::kTruncatedJson:
      Write(s, MalformedKind::kNone);
      buf_.resize(buf_.size() / 2);
      key_.clear();
      return;
    case MalformedKind::kMissingWorkspaceId:
      key_.clear();
      [[fallthrough]];
    default:
      Write(s, mk);
  }
}

bool Generator::Impl::Next(GeneratedLine* out) {
  if (n_ >= opt_.events) return false;
  int64_t time_ms = TimeOfLine(n_);
  out->duplicate = false;
  out->malformed = false;
  out->malformed_kind = MalformedKind::kNone;
  double r = rng_.Uniform();
  if (r < opt_.malformed_fraction) {
    auto mk = static_cast<MalformedKind>(1 + malformed_counter_ % kMalformedKindCount);
    Malformed(mk, time_ms);
    ++malformed_counter_;
    out->malformed = true;
    out->malformed_kind = mk;
    out->json.swap(buf_);
    out->key.assign(key_);
  } else if (r < opt_.malformed_fraction + opt_.duplicate_fraction && !ring_.empty()) {
    const Past& p = ring_[rng_.Below(ring_.size())];
    out->json.assign(p.json);
    out->key.assign(p.key);
    out->duplicate = true;
  } else {
    Spec s;
    if (opt_.mix == Mix::kExecutions) {
      Execution(&s);
    } else if (!Birth(&s)) {
      Regular(&s);
    }
    s.time_ms = time_ms;
    s.offset_min = OffsetFor();
    Write(s, MalformedKind::kNone);
    const Entity& e = entities_[static_cast<int>(s.kind)][s.entity];
    out->json.swap(buf_);
    out->key.assign(ws_[e.ws].id);
    if (opt_.duplicate_fraction > 0) {
      if (ring_.size() < kRingSize) {
        ring_.push_back({out->json, out->key});
      } else {
        ring_[ring_next_].json.assign(out->json);
        ring_[ring_next_].key.assign(out->key);
        ring_next_ = (ring_next_ + 1) % kRingSize;
      }
    }
  }
  ++n_;
  return true;
}

Generator::Generator(GenOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Generator::~Generator() = default;
Generator::Generator(Generator&&) noexcept = default;
Generator& Generator::operator=(Generator&&) noexcept = default;
bool Generator::Next(GeneratedLine* out) { return impl_->Next(out); }
int64_t Generator::produced() const { return impl_->produced(); }
const GenOptions& Generator::options() const { return impl_->options(); }

}  // namespace tally::gen
