#pragma once
// The generator's state (generator.h's pimpl) and the types both halves share. Private to
// tally_gen:
//   generator.cpp           the stream: each line's choice (birth, regular, execution), its JSON
//   internal/world.cpp      the world it draws from: workspaces, users, entities, the schedule
//   gen_options.cpp         the options: mixes, validation, malformed kind names

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <string_view>
#include <vector>

#include "common/calendar.h"
#include "common/json_writer.h"
#include "gen/generator.h"

namespace tally::gen {
namespace internal {

inline constexpr int64_t kDayMs = 86'400'000;

inline uint64_t SplitMix64(uint64_t& state) {
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

// Index in [0, prefix) drawn with the weights of `cdf`.
inline size_t SampleCdf(const std::vector<double>& cdf, size_t prefix, double u) {
  double target = u * cdf[prefix - 1];
  auto it =
      std::upper_bound(cdf.begin(), cdf.begin() + static_cast<std::ptrdiff_t>(prefix), target);
  size_t i = static_cast<size_t>(it - cdf.begin());
  return std::min(i, prefix - 1);
}

inline constexpr std::array<std::string_view, 24> kLastNames = {
    "Smith",  "Garcia", "Nguyen",  "Kowalski", "Okafor",    "Rossi",   "Tanaka", "Silva",
    "Müller", "Haddad", "Johnson", "Patel",    "Fernández", "Ivanova", "Kim",    "Dubois",
    "Brown",  "Lopez",  "Cohen",   "Andersen", "Mensah",    "O'Brien", "Sato",   "Costa"};
inline constexpr std::array<int, 4> kOffsetsMinutes = {120, -300, 330, 540};

enum class Kind : uint8_t { kAgent = 0, kWorkflow = 1 };
enum class Act : uint8_t { kCreated, kUpdated, kDeleted, kExecuted, kCopied, kShared };

inline std::string Quoted(std::string_view s) {
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

// The options with every count and fraction brought into its valid range.
GenOptions Clamp(GenOptions o);

}  // namespace internal

// The generator's sources name these internal pieces unqualified.
using internal::Act;
using internal::Entity;
using internal::kDayMs;
using internal::Kind;
using internal::kLastNames;
using internal::kOffsetsMinutes;
using internal::Quoted;
using internal::Rng;
using internal::SampleCdf;
using internal::SplitMix64;
using internal::User;
using internal::Workspace;

class Generator::Impl {
 public:
  explicit Impl(GenOptions options) : opt_(internal::Clamp(std::move(options))), rng_(opt_.seed) {
    Build();
  }

  bool Next(GeneratedLine* out);
  int64_t produced() const { return n_; }
  const GenOptions& options() const { return opt_; }

 private:
  struct Spec {
    internal::Kind kind = internal::Kind::kAgent;
    internal::Act act = internal::Act::kExecuted;
    int entity = 0;
    int user = 0;
    int64_t time_ms = 0;
    int offset_min = 0;
  };

  void Build();
  void BuildSchedule(DayNumber end_day, int64_t now_ms, bool cap_at_now);
  int64_t TimeOfLine(int64_t n);
  int SampleMember(int ws) {
    const internal::Workspace& w = ws_[ws];
    return w.members[internal::SampleCdf(w.member_cdf, w.members.size(), rng_.Uniform())];
  }
  int SampleEntity(internal::Kind k);
  int OffsetFor() { return rng_.Chance(0.02) ? internal::kOffsetsMinutes[rng_.Below(4)] : 0; }
  void MaybeRenameUser(int u);
  bool Birth(Spec* s);
  void Regular(Spec* s);
  void Execution(Spec* s);
  void Write(const Spec& s, MalformedKind mk);
  // Write's measures of an executed event (duration, tokens, cost, credits, status).
  void AppendMeasures(const Spec& s, MalformedKind mk, std::string* out);
  void Malformed(MalformedKind mk, int64_t time_ms);
  internal::Kind PickKind() {
    if (born_[0] == 0) return internal::Kind::kWorkflow;
    if (born_[1] == 0) return internal::Kind::kAgent;
    return rng_.Chance(0.7) ? internal::Kind::kAgent : internal::Kind::kWorkflow;
  }

  GenOptions opt_;
  internal::Rng rng_;
  std::vector<internal::Workspace> ws_;
  std::vector<internal::User> users_;
  std::vector<internal::Entity> entities_[2];
  std::vector<double> entity_cdf_[2];
  int born_[2] = {0, 0};
  int64_t total_entities_ = 0;
  int64_t initial_entities_ = 0;

  // Time: lines [day_end_[d-1], day_end_[d]) fall on start_day_ + d.
  DayNumber start_day_ = 0;
  std::vector<int64_t> day_end_;
  int64_t last_day_span_ms_ = internal::kDayMs;
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

}  // namespace tally::gen
