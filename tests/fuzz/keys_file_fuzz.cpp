// Fuzz target for the keys file parser (http/auth.h, KeyStore::LoadString): whatever an operator
// writes, tallyd starts with a clear error naming the entry and field, or with keys that hold
// exactly what the file says. Checks: an error has a message; a parsed store authenticates no
// empty token, every key's hash is 64 lowercase hex digits, and parsing again gives the same keys.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "http/auth.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using tally::http::KeyStore;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto store = KeyStore::LoadString(text);
  if (!store) {
    Check(!store.error().message.empty());
    return 0;
  }
  Check(store->Authenticate("") == nullptr);
  for (const auto& key : store->keys()) {
    Check(key.sha256.size() == 64);
    for (char c : key.sha256) Check((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  }
  auto again = KeyStore::LoadString(text);
  Check(again.has_value() && again->keys().size() == store->keys().size());
  return 0;
}
