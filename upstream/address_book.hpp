#pragma once

#include "upstream/service_addresses.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstdint>
#include <fanout/resolve.hpp>
#include <fanout/service.hpp>
#include <memory>
#include <optional>
#include <span>
#include <string>

namespace fanout {

// The addresses of each service of one client, kept off the request path: a service whose host is
// an IP literal has that address; a host name is resolved in the background (see resolve_function),
// at construction and again when next() finds its addresses older than the refresh interval. No timer
// and no work guard: a resolution under way is pending I/O only if the resolver makes it so (Asio's
// does: a getaddrinfo() that hangs keeps run() from returning until it ends; a custom one that never
// answers does not). A failed resolution keeps the last good addresses.
// Not thread-safe: it belongs to the client's executor, where everything must be called.
class address_book {
  public:
    // `resolve` empty: Asio's resolver (getaddrinfo() on a thread of Asio's) on `ex`.
    address_book(
        boost::asio::any_io_executor ex,
        std::span<service const> services,
        resolve_function resolve = {},
        address_book_options options = {}
    );
    address_book(address_book const&) = delete;
    address_book& operator=(address_book const&) = delete;
    // Answers still to come are dropped; Asio's resolutions are cancelled.
    ~address_book();

    // The next address of the service in turn, passing over those that refused lately unless all of
    // them did (then the one whose skip period ends first); nullopt while none is known (why_none()
    // says why). Starts a refresh when one is due; never waits for it.
    std::optional<boost::asio::ip::tcp::endpoint> next(std::size_t service_index);

    // The address refused a connection or could not be reached: next() passes it over for a while.
    void refused(std::size_t service_index, boost::asio::ip::tcp::endpoint const& address);

    // Completes once every service has had its first resolution end: answered, or given up
    // (address_book_options::give_up). IP literals need none. Empty when every service has an
    // address, else the error of the first service (in order) without one: its resolution's, or
    // timed_out when given up. operation_aborted when cancelled (terminal: the resolutions go
    // on), or when the book is destroyed first. The book need not outlive the call.
    boost::asio::awaitable<boost::system::error_code> first_resolutions();

    // Service `service_index` takes the addresses that `from` (another book on the same
    // executor) has for its service `from_index`, instead of waiting for a first resolution of its
    // own: a new configuration's client carries them over for a host and port that stay.
    void carry(std::size_t service_index, address_book const& from, std::size_t from_index);

    // How many addresses the service has now.
    std::size_t size(std::size_t service_index) const noexcept;
    std::span<boost::asio::ip::tcp::endpoint const> addresses(std::size_t service_index) const noexcept;

    // "resolving HOST", "cannot resolve HOST: <why>"; empty while the service has addresses.
    std::string why_none(std::size_t service_index) const;

    resolve_stats stats(std::size_t service_index) const noexcept;

    // Connects `socket` to the service: to next(), then, while an address refuses or is unreachable,
    // to another one not tried yet in this call; each address that fails so is refused(). Stops at
    // once on any other error and on cancellation (operation_aborted). On failure the socket is closed.
    // Without any address, returns at once: the last resolution's error, or
    // host_not_found_try_again while the first is under way (size() is 0; why_none() in words).
    // The book must outlive the call.
    boost::asio::awaitable<boost::system::error_code> connect(
        boost::asio::ip::tcp::socket& socket, std::size_t service_index
    );

  private:
    struct state;
    static boost::asio::awaitable<boost::system::error_code> wait_first_resolutions(std::shared_ptr<state> st
    );
    std::shared_ptr<state> state_;  // answers to come hold a weak_ptr to it
};

}  // namespace fanout
