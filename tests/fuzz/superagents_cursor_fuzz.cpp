// Fuzz target for Super Agents cursors (http/superagents_handler.h): a cursor is base64url of
// (version, result-set id, offset, workspace id) plus an HMAC tag, and whatever a client puts in
// `cursor` must get a 200 (an intact cursor), a 400 or a 422, never a crash or another
// workspace's rows.
//
// A handler with two workspaces' listings (30 rows each) is made once. The input's first byte
// picks the mode: the rest is sent as the cursor itself, or it flips bytes of a cursor the
// handler issued for ws-a and the result is sent for ws-a or for ws-b. Checks: the status is one
// of those, the body is JSON; a 200 for ws-b never carries ws-a's rows (whose ids say "a-").
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "common/sha256.h"
#include "http/auth.h"
#include "http/superagents_handler.h"
#include "query/testing/superagents_testing.h"

namespace {

using namespace tally;
using namespace tally::http;

void Check(bool ok) {
  if (!ok) std::abort();
}

std::shared_ptr<const query::SuperagentsListing> ListingOf(std::string_view ws) {
  query::SuperagentsResult result;
  for (int i = 0; i < 30; ++i) {
    query::SuperagentRow r;
    r.superagent_id = std::string(ws == "ws-a" ? "a-" : "b-") + std::to_string(i);
    r.superagent_name = "Agent " + std::to_string(i);
    r.total_credits_consumed = i;
    result.rows.push_back(std::move(r));
  }
  return std::make_shared<const query::RowsListing>(std::move(result));
}

struct Fixture {
  std::unique_ptr<SuperagentsHandler> handler;
  std::string cursor_a;  // the cursor of ws-a's second page

  Fixture() {
    const std::string keys =
        "[[keys]]\nname = \"admin\"\nsha256 = \"" + Sha256Hex("tok-admin") + "\"\nadmin = true\n";
    auto store = KeyStore::LoadString(keys);
    Check(store.has_value());
    SuperagentsBackend backend;
    backend.run = [](const query::SuperagentsRequest& r)
        -> Result<std::shared_ptr<const query::SuperagentsListing>> {
      return ListingOf(r.workspace_id);
    };
    backend.workspace_known = [](std::string_view ws) { return ws == "ws-a" || ws == "ws-b"; };
    handler = std::make_unique<SuperagentsHandler>(
        std::make_shared<const KeyStore>(std::move(*store)), backend);
    Response first = Call("ws-a", "");
    Check(first.status == 200);
    const std::string key = "\"next_cursor\":\"";
    const size_t at = first.body.find(key);
    Check(at != std::string::npos);
    const size_t from = at + key.size();
    cursor_a = first.body.substr(from, first.body.find('"', from) - from);
  }

  Response Call(const std::string& ws, std::string cursor) const {
    Request r;
    r.method = "GET";
    r.path = "/api/v1/monitoring/" + ws + "/superagents";
    r.path_params = {{"workspace_id", ws}};
    r.query = {{"limit", "10"}};
    if (!cursor.empty()) r.query.emplace_back("cursor", std::move(cursor));
    r.headers = {{"Authorization", "Bearer tok-admin"}};
    return handler->Handle(r);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Fixture fixture;
  if (size == 0) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string cursor;
  std::string ws = "ws-a";
  if (data[0] % 2 == 0) {
    cursor.assign(rest);
  } else {
    cursor = fixture.cursor_a;
    // Pairs of (position, xor mask).
    for (size_t i = 0; i + 1 < rest.size(); i += 2) {
      cursor[static_cast<uint8_t>(rest[i]) % cursor.size()] ^= rest[i + 1];
    }
    if (data[0] % 4 == 3) ws = "ws-b";
  }
  Response r = fixture.Call(ws, cursor);
  Check(r.status == 200 || r.status == 400 || r.status == 422);
  Check(!r.body.empty() && r.body.front() == '{' && r.body.back() == '}');
  if (r.status == 200 && ws == "ws-b") Check(r.body.find("\"a-") == std::string::npos);
  return 0;
}
