#pragma once
// A minimal, allocation-friendly JSON writer for responses and generated events.
//
//   std::string out;
//   tally::JsonWriter w(&out);
//   w.BeginObject();
//   w.Key("total").Int(47);
//   w.Key("results").BeginArray(); w.EndArray();
//   w.Key("unit").Null();
//   w.EndObject();                    // out == {"total":47,"results":[],"unit":null}
//
// The writer inserts commas itself; the caller is responsible for balanced Begin/End calls.
// Not thread-safe (one writer per output string).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tally {

class JsonWriter {
 public:
  explicit JsonWriter(std::string* out) : out_(out) {}

  void BeginObject();
  void EndObject();
  void BeginArray();
  void EndArray();
  // Starts a member of the enclosing object; the next call writes its value. Returns *this, so
  // that a member is one statement: w.Key("total").Int(47).
  JsonWriter& Key(std::string_view key);
  void String(std::string_view value);
  void Int(int64_t value);
  // Finite doubles are written in the shortest form that round-trips (integers without ".0").
  // JSON has no NaN or infinity and a number is never written as null: +/-infinity is written as
  // +/-DBL_MAX (1.7976931348623157e+308), NaN as 0.
  void Double(double value);
  // The string, or null when absent.
  void StringOrNull(const std::optional<std::string>& value);
  void Bool(bool value);
  void Null();
  // Inserts pre-rendered JSON as a value.
  void Raw(std::string_view json);

 private:
  void Separate();
  std::string* out_;
  std::vector<bool> first_;  // per open container: no element written yet
  bool after_key_ = false;
};

// Appends `s` as a quoted JSON string with escaping ('"', '\\', and control characters; other
// bytes, UTF-8 included, are copied as they are).
void AppendJsonString(std::string* out, std::string_view s);
// Appends `value` as a JSON number, as JsonWriter::Int writes it.
void AppendJsonInt(std::string* out, int64_t value);
// Appends `value` as JsonWriter::Double writes it: the shortest form that round-trips, integers
// without ".0", +/-DBL_MAX for +/-infinity, 0 for NaN.
void AppendJsonDouble(std::string* out, double value);

}  // namespace tally
