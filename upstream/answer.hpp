#pragma once

// Reading an upstream's answer on a connection: interim (1xx) answers skipped, the final one read
// whole and judged.

#include "upstream/pool.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <cstdint>
#include <fanout/client.hpp>

namespace fanout {

// More interim answers than this before the final one is an upstream misbehaving.
inline constexpr int max_interim = 8;

// Interim answers (1xx, e.g. 103 Early Hints) precede the final one (RFC 9110 §15.2): reads up to
// the final answer into conn.parser, or to a 101, or to one interim answer too many. `answered`
// is set once some of an answer arrived. operation_aborted: cancelled, maybe before a read started.
boost::asio::awaitable<boost::system::error_code> read_answer(
    connection& conn, client_options const& limits, bool& answered
);

// The final answer on a plain connection (interim ones skipped), read whole into its parser: what
// a cancelled fetch's connection reads to be pooled again.
boost::asio::awaitable<boost::system::error_code> read_final(
    connection& conn, std::size_t max_head, std::uint64_t max_body
);

// A read that ended at an interim answer: a 101, or one more than max_interim.
fetch_result interim_failure(unsigned status);

// The final answer read whole into `parser`, into `out`: its body when it is a 2xx with JSON, else
// the failure it is. The body is moved, not copied.
void take_answer(response_parser& parser, fetch_result& out);

}  // namespace fanout
