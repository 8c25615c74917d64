#include "leaderboard_reference.h"

#include <cmath>
#include <regex>

namespace tally::integration {

std::optional<std::string> IdString(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number_float()) return std::to_string(static_cast<int64_t>(v.get<double>()));
  return std::nullopt;
}

std::string OptString(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

::testing::AssertionResult SameLeaderboard(const json& got, const json& want) {
  if (!got.is_object() || !got.contains("data") || !got["data"].is_array()) {
    return ::testing::AssertionFailure() << "not a leaderboard body: " << got.dump();
  }
  auto strip = [](json b) {
    for (json& row : b["data"]) row.erase("growth_percentage");
    return b;
  };
  bool same = strip(got) == strip(want);
  for (size_t i = 0; same && i < got["data"].size(); ++i) {
    const json &g = got["data"][i]["growth_percentage"], &w = want["data"][i]["growth_percentage"];
    same = g.is_null() == w.is_null() &&
           (g.is_null() || (g.is_number() && std::fabs(g.get<double>() - w.get<double>()) < 1e-9));
  }
  if (same) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\n  got:  " << got.dump() << "\n  want: " << want.dump();
}
}  // namespace tally::integration
