#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/address.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fanout {

// How a simulated service answers (after its latency).
enum class sim_behaviour {
    ok,                    // 200 with a few hundred bytes of plausible JSON
    hang,                  // accept, read the request, never answer
    fail,                  // 500 with a JSON error
    invalid_json,          // 200 with a body that is not JSON
    huge,                  // 200 with a 2 MiB JSON body
    garbage,               // bytes that are not HTTP, then close
    close_early,           // headers promising more body than sent, then close
    close_after_response,  // a keep-alive answer, then close the idle connection
    early_hints,           // 103 Early Hints, then the answer of ok
    unsolicited,           // the answer of ok, then a moment later a second answer nobody asked for
    endless_chunk_ext,     // a chunked 200 whose first chunk-size line never ends
    endless_trailers,      // a chunked 200 whose trailer section never ends
    endless_body,          // a chunked 200 whose body never ends, sent without pause
    trickle,               // the answer of ok, its body one byte every 2 ms
    chaos,                 // each request draws one of the above (mostly ok; a hang stalls 2 s)
};

// Parses a behaviour name as printed by to_string; throws std::invalid_argument.
sim_behaviour parse_sim_behaviour(std::string_view name);
std::string_view to_string(sim_behaviour b) noexcept;

struct sim_service {
    std::string name;
    std::uint16_t port = 0;  // 0: any free port
    std::chrono::milliseconds latency{0};
    std::chrono::milliseconds jitter{0};  // uniform extra latency in [0, jitter)
    double error_rate = 0.0;              // fraction of requests answered 500
    std::size_t body_bytes = 0;           // 0: sim_body(name); else a JSON body of about this size
    sim_behaviour behaviour = sim_behaviour::ok;
    // A heavy tail: this fraction of answers takes tail_latency (plus jitter) instead of latency.
    double tail_ratio = 0.0;
    std::chrono::milliseconds tail_latency{0};
    // An outage: outage_after after start(), for outage_for, the service refuses connections (its
    // port closed, its open connections reset) or, with outage_hangs, reads requests and answers none.
    std::optional<std::chrono::milliseconds> outage_after{};
    std::chrono::milliseconds outage_for{0};
    bool outage_hangs = false;
    // The header carrying the caller's time left (e.g. X-Request-Timeout-Ms); empty: none is read.
    // When set, a request's work (its latency) goes on even if the caller leaves, as real work
    // does, and work past the caller's budget is counted (sim_counters::late_work_ms); with
    // honour_deadline the work stops when the budget is spent (answered 504).
    std::string deadline_header{};
    bool honour_deadline = false;
    std::chrono::milliseconds default_budget{0};  // of a request without the header; 0: unknown
    // Serves TLS with this certificate chain and key (PEM files) when set; else plain HTTP. With
    // tls_client_ca, a client certificate signed by that CA is required.
    std::string tls_cert{};
    std::string tls_key{};
    std::string tls_client_ca{};
    bool tls_1_2_only = false;  // at most TLS 1.2 (its session ids and tickets, not TLS 1.3's)
};

// What a simulated service saw; readable from any thread.
struct sim_counters {
    std::atomic<std::uint64_t> connections{0};     // accepted
    std::atomic<std::uint64_t> requests{0};        // request heads read
    std::atomic<std::uint64_t> answered{0};        // responses written
    std::atomic<std::uint64_t> abandoned{0};       // client closed before it was answered
    std::atomic<std::uint64_t> unsolicited{0};     // answers sent that nobody asked for
    std::atomic<std::uint64_t> late_work_ms{0};    // work done after the caller's budget was spent
    std::atomic<std::uint64_t> deadline_stops{0};  // requests whose work stopped at the budget
    std::atomic<std::uint64_t> refused{0};         // connections reset or refused by an outage
    std::atomic<std::uint64_t> tls_full{0};        // TLS handshakes completed in full
    std::atomic<std::uint64_t> tls_resumed{0};     // ... and by resuming a session
    std::atomic<std::uint64_t> tls_failed{0};      // TLS handshakes that failed
    std::atomic<std::uint64_t> tls_sni{0};         // TLS handshakes whose client named a server (SNI)
};

// Simulated upstream services on one executor, one listening socket each. Used by fanout-sim,
// by fanout's demo mode and by the tests.
class simulator {
  public:
    // Binds every service at once (so ports are known); serving starts with start(). Throws
    // boost::system::system_error naming the address when one cannot be bound.
    simulator(
        boost::asio::any_io_executor ex,
        std::vector<sim_service> services,
        boost::asio::ip::address address = boost::asio::ip::make_address("127.0.0.1")
    );
    simulator(simulator const&) = delete;
    simulator& operator=(simulator const&) = delete;
    ~simulator();

    void start();
    // Stops accepting and closes every connection; must run on the simulator's executor.
    void cancel();

    std::size_t size() const noexcept;
    std::string const& name(std::size_t i) const noexcept;
    std::uint16_t port(std::size_t i) const noexcept;
    std::string url(std::size_t i) const;  // http[s]://ADDRESS:PORT/NAME
    sim_counters const& counters(std::size_t i) const noexcept;

  private:
    struct state;
    std::shared_ptr<state> state_;
};

// The JSON body a healthy simulated service answers with.
std::string_view sim_body(std::string_view service_name) noexcept;

}  // namespace fanout
