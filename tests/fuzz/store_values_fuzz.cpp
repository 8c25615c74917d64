// Fuzz target for the decoders of stored values (store/codec.h, store/bitmap.h) and the merge
// rule that combines a stored value with a staged delta (store/internal/open_state.h): a corrupt
// or truncated value read from RocksDB must never crash a query or the writer; the decoders
// report it as malformed instead.
//
// The input's first byte picks the column family (mod 8); the rest is cut in two at a point the
// second byte picks: a stored value and a delta. Checks beyond "does not crash": a value the
// decoders accept re-encodes to something they accept again; combining never fails, and what it
// produces for a family with a decoder decodes.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "store/bitmap.h"
#include "store/codec.h"
#include "store/internal/family.h"
#include "store/internal/open_state.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

using namespace tally::store;

void DecodeEverything(std::string_view v) {
  Counters c;
  if (AddEncodedCounters(v, &c)) {
    std::string again;
    AppendCounters(c, &again);
    Counters d;
    Check(AddEncodedCounters(again, &d));
  }
  Record r;
  if (DecodeRecord(v, &r)) {
    std::string again;
    AppendRecord(r, &again);
    Record back;
    Check(DecodeRecord(again, &back));
  }
  Slice s;
  if (AppendEncodedSlice(v, &s)) {
    s.Normalize();
    std::string again;
    AppendSlice(s, &again);
    SliceView view;
    Check(view.Parse(again));
    for (size_t i = 0; i < view.user_count(); ++i) (void)view.user(i);
    for (size_t i = 0; i < view.agent_count(); ++i) (void)view.agent(i);
  }
  SliceView view;
  if (view.Parse(v)) {
    for (size_t i = 0; i < view.user_count(); ++i) (void)view.user(i);
    for (size_t i = 0; i < view.agent_count(); ++i) (void)view.agent(i);
  }
  UserBitmap b;
  if (b.OrEncoded(v)) {
    std::string again;
    b.AppendEncoded(&again);
    UserBitmap back;
    Check(back.OrEncoded(again));
    Check(back.Cardinality() == b.Cardinality());
  }
  StoredOffset o;
  (void)DecodeOffset(v, &o);
  int64_t t = 0, inserted = 0;
  (void)DecodeDedupeValue(v, &t, &inserted);
  uint32_t u = 0;
  (void)DecodeUint32(v, &u);
  (void)ForEachUserPackEntry(v, [](uint32_t, std::string_view) {});
  // Keys too: a key read back from a scan.
  std::string week, month;
  (void)RollUpKeys(v, &week, &month);
  std::string_view ws;
  (void)DecodeWorkspaceKey(v, &ws);
  int32_t partition = 0;
  (void)DecodePartitionWorkspaceKey(v, &partition, &ws);
  (void)ParseRecordKey(v);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const auto family =
      static_cast<internal::Family>(data[0] % static_cast<uint8_t>(internal::kFamilyCount));
  std::string_view rest(reinterpret_cast<const char*>(data + 2), size - 2);
  const size_t cut = rest.empty() ? 0 : data[1] % (rest.size() + 1);
  const std::string_view base = rest.substr(0, cut), delta = rest.substr(cut);
  DecodeEverything(base);
  DecodeEverything(delta);
  std::string combined;
  internal::CombineEncoded(family, base, delta, &combined);
  // What a merge produces is a well-formed value of the family (or empty).
  if (!combined.empty()) {
    switch (family) {
      case internal::kCounters: {
        Counters c;
        Check(AddEncodedCounters(combined, &c));
        break;
      }
      case internal::kRecords: {
        Record r;
        Check(DecodeRecord(combined, &r));
        break;
      }
      case internal::kBitmaps: {
        UserBitmap b;
        Check(b.OrEncoded(combined));
        break;
      }
      case internal::kRequests: {
        SliceView v;
        Check(v.Parse(combined));
        break;
      }
      case internal::kUserPacks:
        Check(ForEachUserPackEntry(combined, [](uint32_t, std::string_view) {}));
        break;
      default:
        break;
    }
  }
  DecodeEverything(combined);
  return 0;
}
