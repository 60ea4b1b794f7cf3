#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <span>

// Listening sockets, for the server and for the simulated upstreams alike.
namespace fanout::wire {

// A listening socket on `endpoint` (port 0: any free port), with SO_REUSEADDR so that a restart
// need not wait for the old connections in TIME_WAIT.
//
// With reuse_port (SO_REUSEPORT), the event loops of this process share the port, and only they:
// the kernel would also let another process of the same user join and take a share of the
// connections. So a port another process listens on is refused, as it is without reuse_port; and
// a listener of another process that started at the same moment is found once ours listens (of
// two racing processes, the later to listen sees the earlier one). Ours: the listeners this
// process opened here with reuse_port and has not released. Where /proc/net cannot be read,
// neither check is made.
//
// Throws boost::system::system_error whose what() names the address and nothing else, e.g.
// "cannot listen on 127.0.0.1:8080: Address already in use".
boost::asio::ip::tcp::acceptor open_listener(
    boost::asio::any_io_executor ex, boost::asio::ip::tcp::endpoint const& endpoint, bool reuse_port
);

// Before closing a listener opened with reuse_port: it is no longer one of ours.
void release_listener(boost::asio::ip::tcp::acceptor& acceptor);

// Throws open_listener's error for `endpoint` when a socket listens on its port, at its address
// or at the wildcard address of its family, and is none of the file descriptors `own`.
// Does nothing where /proc/net cannot be read.
void check_own_listeners(boost::asio::ip::tcp::endpoint const& endpoint, std::span<int const> own);

}  // namespace fanout::wire
