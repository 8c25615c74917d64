#include <algorithm>
#include <cmath>

#include "common/clock.h"
#include "gen/internal/generator_impl.h"

namespace tally::gen {
namespace internal {

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

}  // namespace internal

namespace {

constexpr std::array<std::string_view, 24> kFirstNames = {
    "Jane", "John",   "Maria", "Wei",    "Aisha", "Carlos", "Yuki",   "Olga",
    "Liam", "Fatima", "Noah",  "Priya",  "Lucas", "Sofia",  "Mateo",  "Chen",
    "Emma", "Omar",   "Ines",  "Tomasz", "Amara", "Diego",  "Hannah", "Ravi"};
constexpr std::array<std::string_view, 16> kTopics = {
    "Support", "Sales",   "Onboarding", "Billing",  "Research", "Marketing", "Legal",  "HR",
    "Triage",  "Finance", "Docs",       "Security", "Data",     "Release",   "Travel", "Ops"};
constexpr std::array<std::string_view, 6> kAgentNouns = {"Agent",   "Assistant", "Copilot",
                                                         "Advisor", "Bot",       "Helper"};
constexpr std::array<std::string_view, 6> kWorkflowNouns = {"Pipeline", "Workflow", "Sync",
                                                            "Digest",   "Router",   "Report"};
constexpr std::array<double, 4> kVisibilityCdf = {0.35, 0.75, 0.90, 1.0};

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

}  // namespace tally::gen
