#pragma once

#include <boost/asio/ip/basic_endpoint.hpp>
#include <boost/system/error_code.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

// Declared, not included: <boost/asio/ip/tcp.hpp> would add sockets, acceptors and the resolver
// to every file that includes the client's header.
namespace boost::asio::ip {
class tcp;
}

namespace fanout {

// How the client turns a service's host name into addresses, off the request path: it asks once at
// start and again in the background when its addresses have grown older than the refresh interval;
// a fetch never waits for an answer. Plug service discovery or an asynchronous DNS library here.

// The answer: an error, or the addresses (an empty list counts as a failure). The endpoints carry
// their port.
using resolve_handler = std::function<
    void(boost::system::error_code, std::vector<boost::asio::ip::basic_endpoint<boost::asio::ip::tcp>>)>;

// Called on the client's executor, on the request path: start the work and return, never block.
// One question per service at a time, unless one went unanswered for 10 s: then it is given up and
// asked again (a late answer with addresses is still taken). `done` may be called on any thread
// (the answer is carried to the client's executor), also before this returns, and must be called
// while the client's io_context exists if at all; a second call is ignored. Holding `done` without
// calling it keeps nothing alive: the client goes without those addresses, and its io_context's
// run() may still return. Must not throw: an exception would leave the fetch that asked (the first
// question: the io_context's run()).
using resolve_function =
    std::function<void(std::string const& host, std::uint16_t port, resolve_handler done)>;

}  // namespace fanout
