#include "gen/generator.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <numbers>
#include <string_view>
#include <utility>
#include <vector>

#include "common/calendar.h"
#include "common/clock.h"
#include "common/json_writer.h"

namespace tally::gen {
namespace {

constexpr int64_t kDayMs = 86'400'000;

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// xoshiro256**: fast, and its output is fixed by the seed on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (auto& s : s_) s = SplitMix64(seed);
  }
  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }  // [0, 1)
  bool Chance(double p) { return Uniform() < p; }
  // [0, n), n > 0.
  uint64_t Below(uint64_t n) { return static_cast<uint64_t>(Uniform() * static_cast<double>(n)); }
  double Normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = 1.0 - Uniform();  // (0, 1]
    double u2 = Uniform();
    double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = r * std::sin(2 * std::numbers::pi * u2);
    has_spare_ = true;
    return r * std::cos(2 * std::numbers::pi * u2);
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
  double spare_ = 0;
  bool has_spare_ = false;
};

// Cumulative Zipf weights 1/(i+1)^s; sampling within a prefix keeps early (older) items heavier.
std::vector<double> ZipfCdf(size_t n, double s) {
  std::vector<double> cdf(n);
  double acc = 0;
  for (size_t i = 0; i < n; ++i) {
    acc += 1.0 / std::pow(static_cast<double>(i + 1), s);
    cdf[i] = acc;
  }
  return cdf;
}

// Index in [0, prefix) drawn with the weights of `cdf`.
size_t SampleCdf(const std::vector<double>& cdf, size_t prefix, double u) {
  double target = u * cdf[prefix - 1];
  auto it =
      std::upper_bound(cdf.begin(), cdf.begin() + static_cast<std::ptrdiff_t>(prefix), target);
  size_t i = static_cast<size_t>(it - cdf.begin());
  return std::min(i, prefix - 1);
}

constexpr std::array<std::string_view, 24> kFirstNames = {
    "Jane", "John",   "Maria", "Wei",    "Aisha", "Carlos", "Yuki",   "Olga",
    "Liam", "Fatima", "Noah",  "Priya",  "Lucas", "Sofia",  "Mateo",  "Chen",
    "Emma", "Omar",   "Ines",  "Tomasz", "Amara", "Diego",  "Hannah", "Ravi"};
constexpr std::array<std::string_view, 24> kLastNames = {
    "Smith",  "Garcia", "Nguyen",  "Kowalski", "Okafor",    "Rossi",   "Tanaka", "Silva",
    "Müller", "Haddad", "Johnson", "Patel",    "Fernández", "Ivanova", "Kim",    "Dubois",
    "Brown",  "Lopez",  "Cohen",   "Andersen", "Mensah",    "O'Brien", "Sato",   "Costa"};
constexpr std::array<std::string_view, 16> kTopics = {
    "Support", "Sales",   "Onboarding", "Billing",  "Research", "Marketing", "Legal",  "HR",
    "Triage",  "Finance", "Docs",       "Security", "Data",     "Release",   "Travel", "Ops"};
constexpr std::array<std::string_view, 6> kAgentNouns = {"Agent",   "Assistant", "Copilot",
                                                         "Advisor", "Bot",       "Helper"};
constexpr std::array<std::string_view, 6> kWorkflowNouns = {"Pipeline", "Workflow", "Sync",
                                                            "Digest",   "Router",   "Report"};
constexpr std::array<std::string_view, 4> kVisibilities = {
    "private", "workspace", "public_with_login", "public_without_login"};
constexpr std::array<double, 4> kVisibilityCdf = {0.35, 0.75, 0.90, 1.0};
constexpr std::array<int, 4> kOffsetsMinutes = {120, -300, 330, 540};
// Per-token price of an agent's model (USD), by entity index.
constexpr std::array<double, 3> kTokenPrice = {0.000002, 0.00001, 0.00003};

enum class Kind : uint8_t { kAgent = 0, kWorkflow = 1 };
enum class Act : uint8_t { kCreated, kUpdated, kDeleted, kExecuted, kCopied, kShared };

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

std::string Quoted(std::string_view s) {
  std::string out;
  AppendJsonString(&out, s);
  return out;
}

struct Workspace {
  std::string id;
  std::string quoted_id;  // JSON string literal of id
  int org = 0;
  std::vector<int> members;        // user indices, ascending
  std::vector<double> member_cdf;  // cumulative user weights
  std::vector<int> born[2];        // born entity indices per Kind
};

struct User {
  std::string id;
  std::string name;
  std::string email;
  std::string photo;
  int version = 0;
  // JSON string literals of the fields above, rendered once.
  std::string quoted_id, quoted_name, quoted_email, quoted_photo;
  void Render() {
    quoted_id = Quoted(id);
    quoted_name = Quoted(name);
    quoted_email = Quoted(email);
    quoted_photo = Quoted(photo);
  }
};

struct Entity {
  std::string id;
  std::string base_name;
  std::string name;
  std::string quoted_id;    // JSON string literal of id
  std::string quoted_name;  // JSON string literal of name, kept in sync
  int visibility = 0;
  int ws = 0;
  int project = 0;  // global project number (1-based)
  int owner = 0;    // user index
  int updates = 0;
  bool deleted = false;
};

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

std::string HexId(uint64_t seed, uint64_t salt, int hex_digits) {
  uint64_t st = seed * 0x100000001b3ULL ^ salt;
  uint64_t a = SplitMix64(st);
  uint64_t b = SplitMix64(st);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < hex_digits; ++i) {
    uint64_t w = i < 16 ? a : b;
    s.push_back(kHex[(w >> ((i % 16) * 4)) & 15]);
  }
  return s;
}

GenOptions Clamp(GenOptions o) {
  o.events = std::max<int64_t>(o.events, 0);
  o.workspaces = std::max(o.workspaces, 1);
  o.organizations = std::max(o.organizations, 1);
  o.projects_per_workspace = std::max(o.projects_per_workspace, 1);
  o.users = std::max(o.users, 1);
  o.agents = std::max(o.agents, 0);
  o.workflows = std::max(o.workflows, 0);
  if (o.mix == Mix::kExecutions) {
    o.workflows = 0;
    o.agents = std::max(o.agents, 1);
  }
  if (o.agents + o.workflows == 0) o.agents = 1;
  o.days = std::max(o.days, 1);
  auto frac = [](double f) { return std::isfinite(f) ? std::clamp(f, 0.0, 1.0) : 0.0; };
  o.duplicate_fraction = frac(o.duplicate_fraction);
  o.malformed_fraction = frac(o.malformed_fraction);
  if (o.duplicate_fraction + o.malformed_fraction > 1) {
    o.duplicate_fraction = 1 - o.malformed_fraction;
  }
  return o;
}

// Bounded Pareto weights (shape 1.16: about 20% of the users hold about 80% of the weight,
// capped at 1000x the smallest), drawn from their own generator so that the other random
// choices of the stream do not depend on them.
std::vector<double> ParetoWeights(size_t n, uint64_t seed) {
  constexpr double kShape = 1.16;
  constexpr double kMax = 1000;
  const double floor = std::pow(kMax, -kShape);  // P(weight > kMax)
  Rng rng(seed ^ 0x9a4e'7010'9a4eULL);
  std::vector<double> w(n);
  for (double& x : w) {
    // Inverse CDF of the Pareto distribution truncated to [1, kMax].
    double u = floor + (1 - floor) * (1 - rng.Uniform());  // (floor, 1]
    x = std::pow(u, -1 / kShape);
  }
  return w;
}

}  // namespace

Result<Mix> ParseMix(std::string_view name) {
  if (name == "default") return Mix::kDefault;
  if (name == "executions") return Mix::kExecutions;
  return Fail(ErrorCode::kInvalidArgument, "The mix must be one of: default, executions.", "mix");
}

GenOptions MixDefaults(Mix mix) {
  GenOptions o;
  o.mix = mix;
  if (mix == Mix::kExecutions) {
    o.workspaces = 20;
    o.organizations = 5;
    o.agents = 1000;
    o.workflows = 0;
    o.users = 10000;
    o.days = 90;
  }
  return o;
}

const char* MalformedKindName(MalformedKind kind) {
  switch (kind) {
    case MalformedKind::kNone:
      return "none";
    case MalformedKind::kInvalidJson:
      return "invalid_json";
    case MalformedKind::kTruncatedJson:
      return "truncated_json";
    case MalformedKind::kMissingId:
      return "missing_id";
    case MalformedKind::kMissingWorkspaceId:
      return "missing_workspace_id";
    case MalformedKind::kMissingUserId:
      return "missing_user_id";
    case MalformedKind::kMissingEntityId:
      return "missing_entity_id";
    case MalformedKind::kIllTypedField:
      return "ill_typed_field";
    case MalformedKind::kBadTime:
      return "bad_time";
    case MalformedKind::kUnknownType:
      return "unknown_type";
    case MalformedKind::kNegativeNumber:
      return "negative_number";
    case MalformedKind::kWrongSpecVersion:
      return "wrong_specversion";
    case MalformedKind::kOversized:
      return "oversized";
    case MalformedKind::kNotAnObject:
      return "not_an_object";
  }
  return "unknown";
}

Status ValidateGenOptions(const GenOptions& o) {
  auto bad = [](const char* field, std::string msg) {
    return Fail(ErrorCode::kInvalidArgument, std::move(msg), field);
  };
  if (o.events < 0) return bad("events", "The number of events must be >= 0.");
  if (o.first_id < 0) return bad("first_id", "The first event id must be >= 0.");
  if (o.workspaces < 1) return bad("workspaces", "At least one workspace is needed.");
  if (o.organizations < 1) return bad("organizations", "At least one organization is needed.");
  if (o.projects_per_workspace < 1) {
    return bad("projects_per_workspace", "At least one project per workspace is needed.");
  }
  if (o.users < 1) return bad("users", "At least one user is needed.");
  if (o.agents < 0) return bad("agents", "The number of agents must be >= 0.");
  if (o.workflows < 0) return bad("workflows", "The number of workflows must be >= 0.");
  if (o.agents + o.workflows < 1) return bad("agents", "At least one agent or workflow is needed.");
  if (o.mix == Mix::kExecutions) {
    if (o.agents < 1) return bad("agents", "The executions mix needs at least one agent.");
    if (o.workflows != 0) return bad("workflows", "The executions mix has no workflows.");
  }
  if (o.days < 1) return bad("days", "At least one day is needed.");
  if (!(o.duplicate_fraction >= 0 && o.duplicate_fraction <= 1)) {
    return bad("duplicate_fraction", "The duplicate fraction must be within [0, 1].");
  }
  if (!(o.malformed_fraction >= 0 && o.malformed_fraction <= 1)) {
    return bad("malformed_fraction", "The malformed fraction must be within [0, 1].");
  }
  if (o.duplicate_fraction + o.malformed_fraction > 1) {
    return bad("duplicate_fraction",
               "The duplicate and malformed fractions add up to more than 1.");
  }
  if (!o.end_day.empty()) {
    if (auto d = ParseDay(o.end_day); !d) {
      return bad("end_day", "The end day must be a date YYYY-MM-DD: " + d.error().message);
    }
  }
  return Ok();
}

class Generator::Impl {
 public:
  explicit Impl(GenOptions options) : opt_(Clamp(std::move(options))), rng_(opt_.seed) { Build(); }

  bool Next(GeneratedLine* out);
  int64_t produced() const { return n_; }
  const GenOptions& options() const { return opt_; }

 private:
  struct Spec {
    Kind kind = Kind::kAgent;
    Act act = Act::kExecuted;
    int entity = 0;
    int user = 0;
    int64_t time_ms = 0;
    int offset_min = 0;
  };

  void Build();
  void BuildSchedule(DayNumber end_day, int64_t now_ms, bool cap_at_now);
  int64_t TimeOfLine(int64_t n);
  int SampleMember(int ws) {
    const Workspace& w = ws_[ws];
    return w.members[SampleCdf(w.member_cdf, w.members.size(), rng_.Uniform())];
  }
  int SampleEntity(Kind k);
  int OffsetFor() { return rng_.Chance(0.02) ? kOffsetsMinutes[rng_.Below(4)] : 0; }
  void MaybeRenameUser(int u);
  bool Birth(Spec* s);
  void Regular(Spec* s);
  void Execution(Spec* s);
  void Write(const Spec& s, MalformedKind mk);
  void Malformed(MalformedKind mk, int64_t time_ms);
  Kind PickKind() {
    if (born_[0] == 0) return Kind::kWorkflow;
    if (born_[1] == 0) return Kind::kAgent;
    return rng_.Chance(0.7) ? Kind::kAgent : Kind::kWorkflow;
  }

  GenOptions opt_;
  Rng rng_;
  std::vector<Workspace> ws_;
  std::vector<User> users_;
  std::vector<Entity> entities_[2];
  std::vector<double> entity_cdf_[2];
  int born_[2] = {0, 0};
  int64_t total_entities_ = 0;
  int64_t initial_entities_ = 0;

  // Time: lines [day_end_[d-1], day_end_[d]) fall on start_day_ + d.
  DayNumber start_day_ = 0;
  std::vector<int64_t> day_end_;
  int64_t last_day_span_ms_ = kDayMs;
  size_t cur_day_ = 0;

  int64_t n_ = 0;
  int malformed_counter_ = 0;
  std::string buf_;
  std::string key_;

  struct Past {
    std::string json;
    std::string key;
  };
  std::vector<Past> ring_;
  size_t ring_next_ = 0;
  static constexpr size_t kRingSize = 4096;
};

void Generator::Impl::Build() {
  Clock clock;
  int64_t now_ms = clock.NowMillis();
  DayNumber end_day = clock.Today();
  bool cap_at_now = true;
  if (!opt_.end_day.empty()) {
    if (auto d = ParseDay(opt_.end_day)) {
      end_day = *d;
      cap_at_now = false;
    }
  }
  if (cap_at_now) opt_.end_day = FormatDay(end_day);

  // Workspaces and organizations.
  ws_.resize(static_cast<size_t>(opt_.workspaces));
  for (int i = 0; i < opt_.workspaces; ++i) {
    std::string h = HexId(opt_.seed, 0x5753'0000ULL + static_cast<uint64_t>(i), 32);
    ws_[i].id = h.substr(0, 8) + "-" + h.substr(8, 4) + "-4" + h.substr(13, 3) + "-a" +
                h.substr(17, 3) + "-" + h.substr(20, 12);
    ws_[i].quoted_id = Quoted(ws_[i].id);
    ws_[i].org = i % opt_.organizations;
  }

  // Users: ids alternate between numeric strings and "u_N"; 1-2 workspaces each.
  std::vector<double> ws_cdf = ZipfCdf(ws_.size(), 0.8);
  users_.resize(static_cast<size_t>(opt_.users));
  for (int i = 0; i < opt_.users; ++i) {
    User& u = users_[i];
    u.id = (i % 4 == 3 ? "u_" : "") + std::to_string(i + 1);
    std::string_view first = kFirstNames[rng_.Below(kFirstNames.size())];
    std::string_view last = kLastNames[rng_.Below(kLastNames.size())];
    u.name = std::string(first) + " " + std::string(last);
    u.email = std::string(first) + "." + std::to_string(i + 1) + "@company" +
              std::to_string(i % 97) + ".example.com";
    std::transform(u.email.begin(), u.email.end(), u.email.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    u.photo = "https://example.com/u/" + u.id + ".jpg";
    u.Render();
    int primary =
        i < opt_.workspaces ? i : static_cast<int>(SampleCdf(ws_cdf, ws_.size(), rng_.Uniform()));
    ws_[primary].members.push_back(i);
    if (opt_.workspaces > 1 && rng_.Chance(0.3)) {
      int second = static_cast<int>(rng_.Below(ws_.size()));
      if (second != primary) ws_[second].members.push_back(i);
    }
  }
  const bool executions = opt_.mix == Mix::kExecutions;
  std::vector<double> pareto;
  if (executions) pareto = ParetoWeights(users_.size(), opt_.seed);
  for (size_t i = 0; i < ws_.size(); ++i) {
    Workspace& w = ws_[i];
    if (w.members.empty()) w.members.push_back(static_cast<int>(i % users_.size()));
    std::sort(w.members.begin(), w.members.end());
    double acc = 0;
    for (int m : w.members) {
      acc += executions ? pareto[static_cast<size_t>(m)] : 1.0 / static_cast<double>(m + 1);
      w.member_cdf.push_back(acc);
    }
  }

  // Entities, scaled down for small streams.
  int64_t a = opt_.agents, f = opt_.workflows;
  int64_t cap = std::max<int64_t>(1, opt_.events * 8 / 100);
  if (!executions && a + f > cap) {
    int64_t sa = a * cap / (a + f), sf = f * cap / (a + f);
    a = (a > 0 ? std::max<int64_t>(sa, 1) : 0);
    f = (f > 0 ? std::max<int64_t>(sf, 1) : 0);
  }
  for (int k = 0; k < 2; ++k) {
    int64_t count = k == 0 ? a : f;
    auto& list = entities_[k];
    list.resize(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) {
      Entity& e = list[i];
      e.id = (k == 0 ? "agent_" : "wf_") +
             HexId(opt_.seed, (static_cast<uint64_t>(k + 1) << 40) + static_cast<uint64_t>(i), 10);
      const auto& nouns = k == 0 ? kAgentNouns : kWorkflowNouns;
      e.base_name = std::string(kTopics[rng_.Below(kTopics.size())]) + " " +
                    std::string(nouns[rng_.Below(nouns.size())]) + " " + std::to_string(i + 1);
      e.name = e.base_name;
      e.quoted_id = Quoted(e.id);
      e.quoted_name = Quoted(e.name);
      double v = rng_.Uniform();
      e.visibility = 0;
      while (e.visibility < 3 && v >= kVisibilityCdf[e.visibility]) ++e.visibility;
      e.ws = static_cast<int>(SampleCdf(ws_cdf, ws_.size(), rng_.Uniform()));
      e.project = e.ws * opt_.projects_per_workspace +
                  static_cast<int>(rng_.Below(static_cast<uint64_t>(opt_.projects_per_workspace))) +
                  1;
      e.owner = SampleMember(e.ws);
    }
    entity_cdf_[k] = ZipfCdf(list.size(), 1.0);
  }
  total_entities_ = a + f;
  initial_entities_ = (total_entities_ + 4) / 5;
  if (executions) born_[0] = static_cast<int>(a);  // every agent exists from the start

  BuildSchedule(end_day, now_ms, cap_at_now);
  buf_.reserve(1024);
  if (opt_.duplicate_fraction > 0) ring_.reserve(kRingSize);
}

void Generator::Impl::BuildSchedule(DayNumber end_day, int64_t now_ms, bool cap_at_now) {
  start_day_ = end_day - opt_.days + 1;
  Rng day_rng(opt_.seed ^ 0xda75'da75'da75ULL);
  std::vector<double> weight(static_cast<size_t>(opt_.days));
  double total = 0;
  for (int d = 0; d < opt_.days; ++d) {
    int weekday = ((start_day_ + d) % 7 + 7 + 3) % 7;  // 0 = Monday; day 0 was a Thursday
    double wday = weekday >= 5 ? 0.35 : 1.0;
    double growth = 1.0 + 0.6 * d / std::max(1, opt_.days - 1);
    double noise = 0.9 + 0.2 * day_rng.Uniform();
    weight[d] = wday * growth * noise;
    total += weight[d];
  }
  if (cap_at_now) {
    int64_t span = now_ms - static_cast<int64_t>(end_day) * kDayMs;
    last_day_span_ms_ = std::clamp<int64_t>(span, 1, kDayMs);
    // Scale the last day's share by how much of it has elapsed.
    double frac = static_cast<double>(last_day_span_ms_) / kDayMs;
    total -= weight.back() * (1 - frac);
    weight.back() *= frac;
  }
  day_end_.resize(weight.size());
  double acc = 0;
  for (size_t d = 0; d < weight.size(); ++d) {
    acc += weight[d];
    day_end_[d] = std::llround(static_cast<double>(opt_.events) * acc / total);
  }
  day_end_.back() = opt_.events;
}

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
  o.append("}}");
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
