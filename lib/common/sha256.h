#pragma once
// SHA-256 helpers (OpenSSL) and a constant-time comparison.
//
//   std::string hex = tally::Sha256Hex("token");   // 64 lowercase hex characters
//   bool same = tally::ConstantTimeEquals(hex, stored_hex);
//
// Thread-safe.

#include <string>
#include <string_view>

namespace tally {

std::string Sha256Hex(std::string_view data);

// Compares two strings in time that depends only on their lengths, never on their contents.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// `n` random bytes from the OS CSPRNG as lowercase hex (2n characters).
std::string RandomHex(size_t n);

}  // namespace tally
