#include "http/superagents_handler.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>

#include "common/calendar.h"
#include "common/json_writer.h"
#include "common/sha256.h"
#include "http/error_mapping.h"
#include "http/superagents_request.h"

namespace tally::http {
namespace {

constexpr char kCursorVersion = 1;
constexpr size_t kSetIdBytes = 16;
constexpr size_t kTagBytes = 32;
constexpr size_t kHeaderBytes = 1 + kSetIdBytes + 4;

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int DecodeChar(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    // Without OpenSSL's CSPRNG, fall back to the OS-random hex generator of common/.
    const std::string hex = RandomHex(n);
    auto nibble = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
    for (size_t i = 0; i < n && 2 * i + 1 < hex.size(); ++i) {
      out[i] = static_cast<char>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
    }
  }
  return out;
}

std::string Tag(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  return std::string(reinterpret_cast<const char*>(md), len);
}

Response CursorError(std::string_view message, std::string detail) {
  return FieldErrorsResponse(400, message, {FieldError{"cursor", std::move(detail)}});
}

Response InvalidCursor() {
  return CursorError("The cursor is invalid.",
                     "The cursor is malformed, was tampered with or belongs to another request.");
}

}  // namespace

std::string Base64UrlEncode(std::string_view data) {
  std::string out;
  out.reserve((data.size() * 4 + 2) / 3);
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t v = (uint8_t(data[i]) << 16) | (uint8_t(data[i + 1]) << 8) | uint8_t(data[i + 2]);
    out.push_back(kAlphabet[v >> 18]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  if (data.size() - i == 1) {
    uint32_t v = uint8_t(data[i]) << 16;
    out.push_back(kAlphabet[v >> 18]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
  } else if (data.size() - i == 2) {
    uint32_t v = (uint8_t(data[i]) << 16) | (uint8_t(data[i + 1]) << 8);
    out.push_back(kAlphabet[v >> 18]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
  }
  return out;
}

std::optional<std::string> Base64UrlDecode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = DecodeChar(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Canonical encodings only: the unused low bits of the last character must be zero, so
  // that every cursor has exactly one spelling.
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

SuperagentsHandler::SuperagentsHandler(std::shared_ptr<const KeyStore> keys,
                                       SuperagentsBackend backend, SuperagentsOptions options)
    : keys_(std::move(keys)),
      backend_(std::move(backend)),
      options_(options),
      hmac_key_(RandomBytes(32)) {
  if (options_.max_result_sets == 0) options_.max_result_sets = 1;
}

void SuperagentsHandler::Account(const query::SuperagentsListing& listing, int sign) const {
  size_t bytes = listing.OwnBytes();
  if (const void* table = listing.SharedTable()) {
    size_t& users = tables_[table];
    // The shared table counts once, while at least one cached set uses it.
    if (sign > 0 ? users++ == 0 : --users == 0) bytes += listing.SharedTableBytes();
    if (users == 0) tables_.erase(table);
  }
  cached_bytes_ = sign > 0 ? cached_bytes_ + bytes : cached_bytes_ - bytes;
}

std::string SuperagentsHandler::Remember(const std::string& workspace_id, Listing listing) const {
  std::string id = RandomBytes(kSetIdBytes);
  const auto now = std::chrono::steady_clock::now();
  // Evicted listings may be the last owners of large tables: they are destroyed here, after the
  // lock is released, so that other requests do not wait for it.
  std::vector<Listing> evicted;
  std::lock_guard<std::mutex> lock(mu_);
  Account(*listing, +1);
  // Drop expired sets (oldest first), then the oldest live ones beyond the bounds.
  while (!order_.empty()) {
    auto it = sets_.find(order_.front());
    if (sets_.size() < options_.max_result_sets && it->second.expires > now &&
        cached_bytes_ <= options_.max_cached_bytes) {
      break;
    }
    Account(*it->second.listing, -1);
    evicted.push_back(std::move(it->second.listing));
    sets_.erase(it);
    order_.pop_front();
  }
  order_.push_back(id);
  sets_[id] = Entry{workspace_id, std::move(listing), now + options_.ttl};
  return id;
}

std::string SuperagentsHandler::MakeCursor(std::string_view set_id, uint32_t offset,
                                           std::string_view workspace_id) const {
  std::string payload;
  payload.reserve(kHeaderBytes + workspace_id.size() + kTagBytes);
  payload.push_back(kCursorVersion);
  payload.append(set_id);
  for (int shift = 24; shift >= 0; shift -= 8) {
    payload.push_back(static_cast<char>((offset >> shift) & 0xff));
  }
  payload.append(workspace_id);
  payload.append(Tag(hmac_key_, payload));
  return Base64UrlEncode(payload);
}

Response SuperagentsHandler::Handle(const Request& request) const {
  std::optional<std::string_view> token = ExtractToken(request);
  const ApiKey* key = token ? keys_->Authenticate(*token) : nullptr;
  if (!key) return UnauthenticatedResponse();

  const std::string ws(request.PathParam("workspace_id"));
  // A key that does not hold the workspace learns nothing about it, not even whether it exists.
  if (!key->admin && !key->IsMember(ws)) return ForbiddenResponse();
  if (!backend_.workspace_known(ws) && !keys_->AnyKeyNamesWorkspace(ws)) {
    return WorkspaceNotFoundResponse();
  }

  auto parsed = ParseSuperagentsRequest(request.query);
  if (!parsed) return ValidationErrorResponse(parsed.error());
  if (backend_.route) {
    if (auto elsewhere = backend_.route(request, ws)) return std::move(*elsewhere);
  }

  Listing listing;
  std::string set_id;
  size_t offset = 0;
  if (!parsed->cursor.empty()) {
    std::optional<std::string> raw = Base64UrlDecode(parsed->cursor);
    if (!raw || raw->size() < kHeaderBytes + kTagBytes || (*raw)[0] != kCursorVersion) {
      return InvalidCursor();
    }
    std::string_view data(*raw);
    std::string_view payload = data.substr(0, data.size() - kTagBytes);
    if (!ConstantTimeEquals(Tag(hmac_key_, payload), data.substr(payload.size()))) {
      return InvalidCursor();
    }
    if (payload.substr(kHeaderBytes) != ws) return InvalidCursor();
    set_id.assign(payload.substr(1, kSetIdBytes));
    uint32_t off = 0;
    for (size_t i = 0; i < 4; ++i) off = (off << 8) | uint8_t(payload[1 + kSetIdBytes + i]);
    offset = off;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = sets_.find(set_id);
      if (it != sets_.end() && it->second.expires > std::chrono::steady_clock::now() &&
          it->second.workspace_id == ws) {
        listing = it->second.listing;
      }
    }
    if (!listing) {
      return CursorError("The cursor has expired; restart from the first page.",
                         "The result set of this cursor is no longer available; request the "
                         "first page again (without cursor).");
    }
    if (offset > listing->size()) return InvalidCursor();
  } else {
    parsed->request.workspace_id = ws;
    Result<Listing> result = backend_.run(parsed->request);
    if (!result) {
      if (result.error().code == ErrorCode::kInvalidArgument) {
        const Error& e = result.error();
        return ValidationErrorResponse(
            {FieldError{e.field.empty() ? std::string("request") : e.field, e.message}});
      }
      return ErrorResponse(result.error());
    }
    listing = std::move(*result);
  }

  const size_t next = offset + static_cast<size_t>(parsed->limit);
  std::optional<std::string> next_cursor;
  if (next < listing->size()) {
    if (set_id.empty()) set_id = Remember(ws, listing);
    next_cursor = MakeCursor(set_id, static_cast<uint32_t>(next), ws);
  }
  return JsonResponse(200, RenderSuperagents(*listing, offset, parsed->limit, next_cursor));
}

std::string RenderSuperagents(const query::SuperagentsListing& listing, size_t offset, int limit,
                              const std::optional<std::string>& next_cursor) {
  const size_t total = listing.size();
  const size_t begin = std::min(offset, total);
  const size_t end = std::min(total, begin + static_cast<size_t>(limit));
  std::string out;
  out.reserve(96 + (end - begin) * 320);
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("superagents").BeginArray();
  for (size_t i = begin; i < end; ++i) {
    const query::SuperagentRow row = listing.Row(i);
    w.BeginObject();
    w.Key("superagent_id").String(row.superagent_id);
    w.Key("superagent_name").StringOrNull(row.superagent_name);
    w.Key("active_users_last_30d").Int(row.active_users_last_30d);
    w.Key("message_credits_consumed").Double(row.message_credits_consumed);
    w.Key("integration_credits_consumed").Double(row.integration_credits_consumed);
    w.Key("total_credits_consumed").Double(row.total_credits_consumed);
    w.Key("owner_user_id").String(row.owner_user_id);
    w.Key("created_by_email").StringOrNull(row.created_by_email);
    w.Key("created_at").String(FormatRfc3339Seconds(row.created_at_ms));
    w.EndObject();
  }
  w.EndArray();
  w.Key("pagination").BeginObject();
  w.Key("total").Int(static_cast<int64_t>(total));
  w.Key("limit").Int(limit);
  w.Key("has_more").Bool(end < total);
  w.Key("next_cursor").StringOrNull(next_cursor);
  w.EndObject();
  w.EndObject();
  return out;
}

}  // namespace tally::http
