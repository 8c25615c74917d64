#pragma once
// Compatibility aliases for tests, benchmarks and the integration harness: the synchronous
// client now lives in http/client.h (namespace tally::http). New code includes that header.

#include "http/client.h"

namespace tally::http::testing {

using http::Fetch;
using http::HttpClient;
using http::HttpReply;

}  // namespace tally::http::testing
