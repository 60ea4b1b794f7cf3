// One test per workaround of a bug or limit of Boost 1.81 (Asio, Beast, URL) that fanout relies on,
// named "<what the library does>__<what fanout does about it>". Each begins with what the library
// does, what fanout does about it, and a note printed under any other Boost version; each checks
// fanout's answer through fanout's own code. Where the library's behaviour is cheap to show, the
// test shows it too (library_still): a Boost that behaves otherwise fails there, which says that
// the workaround may have become unneeded and must be re-checked.
// Elsewhere: the server's run() resets its cancellation state before it waits for the drain
// (test_shutdown/cancelling_the_run_stops_the_server).

#include "server/request_parser.hpp"
#include "server/stream.hpp"
#include "tests/support.hpp"
#include "upstream/response_parser.hpp"
#include "wire/read_message.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/multiple_exceptions.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>
#include <boost/url/parse.hpp>
#include <boost/version.hpp>

#include <algorithm>
#include <fanout/client.hpp>
#include <fanout/combinators.hpp>
#include <source_location>
#include <stdexcept>
#include <string>

// Which sanitizer is on: g++ says so with macros, clang with __has_feature.
#if defined(__SANITIZE_ADDRESS__)
#define FANOUT_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FANOUT_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define FANOUT_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FANOUT_TEST_TSAN 1
#endif
#endif
#if defined(FANOUT_TEST_ASAN)
#include <sanitizer/asan_interface.h>
#endif

using namespace fanout;
using namespace fanout::test;
namespace net = boost::asio;
namespace http = boost::beast::http;
namespace json = boost::json;
using tcp = net::ip::tcp;
using boost::system::error_code;
using namespace net::experimental::awaitable_operators;

namespace {

#if defined(FANOUT_TEST_ASAN) || defined(FANOUT_TEST_TSAN)
constexpr bool sanitized = true;
#else
constexpr bool sanitized = false;
#endif

// The first line of every case: its workaround was written for Boost 1.81.
void written_for_boost_181() {
    if (BOOST_VERSION != 108100)
        BOOST_TEST_MESSAGE(
            boost::unit_test::framework::current_test_case().p_name.get()
            << ": written for Boost 1.81, built with " << BOOST_VERSION / 100000 << "."
            << BOOST_VERSION / 100 % 1000 << ": re-check that the workaround is still needed and enough"
        );
}

// The library still does what the workaround is for.
void library_still(
    bool does, std::string_view what, std::source_location at = std::source_location::current()
) {
    BOOST_TEST(
        does, "line " << at.line() << ": Boost " << BOOST_VERSION / 100000 << "."
                      << BOOST_VERSION / 100 % 1000 << " no longer " << what
                      << ": re-check the workaround, which may go, and this check with it"
    );
}

// Runs `op` to its end, cancelling it (terminal) once `cancel_after` has passed if given; fails the
// test if it does not complete within 10 s.
template <class T>
T run(net::io_context& ioc, net::awaitable<T> op, std::chrono::milliseconds cancel_after = 0ms) {
    ioc.restart();  // after an earlier run() or poll() that ran out of work
    std::optional<T> result;
    net::cancellation_signal cancel;
    net::steady_timer canceller{ioc, cancel_after};
    if (cancel_after > 0ms)
        canceller.async_wait([&](error_code ec) {
            if (!ec) cancel.emit(net::cancellation_type::terminal);
        });
    net::co_spawn(
        ioc, std::move(op),
        net::bind_cancellation_slot(
            cancel.slot(),
            [&](std::exception_ptr e, T r) {
                BOOST_TEST_REQUIRE(!e);  // r is empty
                result.emplace(std::move(r));
                canceller.cancel();
            }
        )
    );
    auto const give_up = std::chrono::steady_clock::now() + 10s;
    while (!result && std::chrono::steady_clock::now() < give_up) ioc.run_one_for(100ms);
    BOOST_TEST_REQUIRE(result.has_value());
    return std::move(*result);
}

// `value` after `delay`; cancelled, it throws operation_aborted.
net::awaitable<int> after(std::chrono::milliseconds delay, int value) {
    net::steady_timer timer{co_await net::this_coro::executor, delay};
    co_await timer.async_wait(net::use_awaitable);
    co_return value;
}

net::awaitable<int> fails_now() {
    throw std::runtime_error("the real failure");
    co_return 0;
}

// `value` after a few turns of the loop: later than anything that completes at once.
net::awaitable<int> later(int value) {
    auto ex = co_await net::this_coro::executor;
    for (int i = 0; i < 3; ++i) co_await net::post(ex, net::use_awaitable);
    co_return value;
}

net::awaitable<std::string> text(std::string s) {
    co_return s;
}

std::vector<net::awaitable<int>> children(auto&&... c) {
    std::vector<net::awaitable<int>> v;
    (v.push_back(std::move(c)), ...);
    return v;
}

// The error of each outcome, in the order they arrive through next().
net::awaitable<std::vector<error_code>> errors_through_next(std::vector<net::awaitable<int>> c) {
    co_await net::this_coro::throw_if_cancelled(false);
    auto arriving = as_completed(co_await net::this_coro::executor, std::move(c));
    std::vector<error_code> errors;
    while (arriving.remaining() > 0) {
        auto next = co_await arriving.next();
        errors.push_back(next.second.error);
    }
    co_return errors;
}

// The same through each().
net::awaitable<std::vector<error_code>> errors_through_each(std::vector<net::awaitable<int>> c) {
    auto arriving = as_completed(co_await net::this_coro::executor, std::move(c));
    std::vector<error_code> errors;
    co_await arriving.each([&](std::size_t, outcome<int> o) { errors.push_back(o.error); });
    co_return errors;
}

std::string what_of(std::exception_ptr e) {
    try {
        std::rethrow_exception(e);
    } catch (boost::system::system_error const& se) {
        return se.code() == net::error::operation_aborted ? "operation_aborted" : se.what();
    } catch (std::exception const& x) {
        return x.what();
    }
}

// A response parser that emits `signal` once, as the first bytes of the body arrive: between two
// socket reads, when no read is pending for the cancellation to reach.
class cancels_at_the_body final : public wire::guarded_parser<false> {
  public:
    explicit cancels_at_the_body(net::cancellation_signal& s) : signal_(s) {
        body_limit(std::uint64_t(1) << 32);
    }
    std::size_t body_read = 0;

  private:
    void on_request_impl(http::verb, string_view, string_view, int, error_code&) override {}
    void on_response_impl(int, string_view, int, error_code&) override {}
    void on_field_impl(http::field, string_view, string_view, error_code&) override {}
    void on_header_impl(error_code&) override {}
    void on_body_init_impl(boost::optional<std::uint64_t> const&, error_code&) override {}
    std::size_t on_body_impl(string_view data, error_code& ec) override { return on_chunk_data(data, ec); }
    std::size_t on_chunk_data(string_view data, error_code&) override {
        if (body_read == 0) signal_.emit(net::cancellation_type::terminal);
        body_read += data.size();
        return data.size();
    }
    void on_finish_impl(error_code&) override {}

    net::cancellation_signal& signal_;
};

constexpr std::size_t sent_body = std::size_t(8) << 20;

// The first connection's peer: an answer with a body of sent_body bytes, written without pause.
net::awaitable<void> send_answer(tcp::acceptor& acceptor) {
    auto [aec, sock] = co_await acceptor.async_accept(net::as_tuple(net::use_awaitable));
    if (aec) co_return;
    auto answer = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(sent_body) + "\r\n\r\n";
    answer.resize(answer.size() + sent_body, 'x');
    co_await net::async_write(sock, net::buffer(answer), net::as_tuple(net::use_awaitable));
}

net::awaitable<error_code> read_answer(tcp::socket& sock, cancels_at_the_body& parser, bool with_beast) {
    boost::beast::flat_buffer buffer;
    try {
        if (with_beast) {
            auto [ec, n] = co_await http::async_read(sock, buffer, parser, net::as_tuple(net::use_awaitable));
            co_return ec;
        }
        co_return co_await wire::read_message(sock, buffer, parser, 8192);
    } catch (boost::system::system_error const& e) {
        co_return e.code();  // cancelled: the next read refused to start
    }
}

struct read_end {
    error_code ec;
    std::size_t body_read = 0;
};

// An answer read over loopback, cancelled once as its body begins: with Beast's http::async_read,
// or with fanout's wire::read_message.
read_end read_cancelled_once(bool with_beast) {
    net::io_context ioc;
    tcp::acceptor acceptor{ioc, {net::ip::address_v4::loopback(), 0}};
    net::co_spawn(ioc, send_answer(acceptor), net::detached);
    tcp::socket sock{ioc};
    sock.connect(acceptor.local_endpoint());
    net::cancellation_signal signal;
    cancels_at_the_body parser{signal};
    std::optional<error_code> ended;
    net::co_spawn(
        ioc, read_answer(sock, parser, with_beast),
        net::bind_cancellation_slot(
            signal.slot(),
            [&](std::exception_ptr, error_code ec) {
                ended = ec;
                sock.close();  // the peer's write ends
            }
        )
    );
    while (!ended && ioc.run_one_for(10s) > 0) {
    }
    BOOST_TEST_REQUIRE(ended.has_value());
    return {*ended, parser.body_read};
}

// Feeds `message` to a fresh parser in three pieces split at i and j, as a socket may deliver them.
template <class Parser>
error_code parse_split(std::string_view message, std::size_t i, std::size_t j) {
    Parser parser;
    boost::beast::flat_buffer buffer;
    error_code ec;
    for (auto piece : {message.substr(0, i), message.substr(i, j - i), message.substr(j)}) {
        buffer.commit(net::buffer_copy(buffer.prepare(piece.size()), net::buffer(piece)));
        ec = wire::parse_buffered(parser, buffer, 8192);
        if (ec != http::error::need_more) break;
    }
    if (!ec && !parser.is_done()) ec = http::error::partial_message;
    return ec;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(test_asio_workarounds)

// `||` completes with the first branch to *succeed*: a branch that throws leaves it waiting for the
// other. A group racing its deadline must therefore complete normally when a child failed:
// stop_quietly swallows the fail-fast join's own exceptions, and a fetch's failure is a value.
BOOST_AUTO_TEST_CASE(or_waits_for_the_first_success__join_stops_quietly) {
    written_for_boost_181();
    net::io_context ioc;
    auto success_won = [](net::awaitable<int> failing) -> net::awaitable<bool> {
        auto r = co_await (std::move(failing) || later(2));
        co_return r.index() == 1;
    };
    library_still(run(ioc, success_won(fails_now())), "makes || wait for a success after a branch threw");
    // With a deadline an hour away, completing at all shows the failure ended the race.
    auto r = run(ioc, fail_fast(1h, children(after(1h, 0), fails_now())));
    BOOST_TEST((r.first_failure == std::optional<std::size_t>(1)));
    BOOST_TEST((r.outcomes[0].error == net::error::operation_aborted));
    fanout::client refused{
        ioc.get_executor(),
        {make_service("down", "http://127.0.0.1:" + std::to_string(closed_port()) + "/")},
        {}};
    auto fetched = run(ioc, fetch_within(refused, 1h));
    BOOST_TEST_REQUIRE(fetched.has_value());
    BOOST_TEST((fetched->error && fetched->error->kind == error_kind::connect));
}

// When both sides of `&&` throw (the failed child, and its sibling failing as it is cancelled),
// `&&` throws multiple_exceptions holding the *left* side's exception: the real failure, on the
// right, is lost. fail_fast records the first failure itself and catches multiple_exceptions.
BOOST_AUTO_TEST_CASE(and_loses_the_real_error__multiple_exceptions_caught) {
    written_for_boost_181();
    net::io_context ioc;
    auto reported = []() -> net::awaitable<std::string> {
        try {
            co_await (after(1h, 0) && fails_now());
        } catch (net::multiple_exceptions const& m) {
            co_return "multiple_exceptions of " + what_of(m.first_exception());
        } catch (...) {
            co_return what_of(std::current_exception());
        }
        co_return "nothing";
    };
    library_still(
        run(ioc, reported()) == "multiple_exceptions of operation_aborted",
        "reports the left side's error (here: cancelled) when both sides of && throw"
    );
    auto r = run(ioc, fail_fast(children(after(1h, 0), fails_now())));
    BOOST_TEST((r.first_failure == std::optional<std::size_t>(1)));
    BOOST_TEST(what_of(r.outcomes[1].exception) == "the real failure");
    BOOST_TEST((r.outcomes[0].error == net::error::operation_aborted));
}

// Once a coroutine is cancelled, its next co_await of an operation throws operation_aborted (unless
// this_coro::throw_if_cancelled is off), even one that would complete. as_completed's each() turns
// the flag off so as to collect the cancelled children's outcomes, through
// detail::cancellation_not_thrown, which puts it back however the section ends: the flag belongs to
// the whole chain of coroutines, and only a co_await can set it.
BOOST_AUTO_TEST_CASE(cancelled_coroutine_throws_at_next_await__flag_restored) {
    written_for_boost_181();
    net::io_context ioc;
    auto next_await_throws = []() -> net::awaitable<bool> {
        net::steady_timer timer{co_await net::this_coro::executor, 1h};
        co_await timer.async_wait(net::as_tuple(net::use_awaitable));  // cancelled: no throw yet
        auto ex = co_await net::this_coro::executor;
        try {
            co_await net::post(ex, net::use_awaitable);
        } catch (boost::system::system_error const& e) {
            co_return e.code() == net::error::operation_aborted;
        }
        co_return false;
    };
    library_still(run(ioc, next_await_throws(), 20ms), "makes a cancelled coroutine's next co_await throw");

    auto section = [](bool fail) -> net::awaitable<int> {
        bool const inside = co_await net::this_coro::throw_if_cancelled();
        BOOST_TEST(!inside);
        if (fail) throw std::runtime_error("section failed");
        co_return 7;
    };
    auto check = [&]() -> net::awaitable<int> {
        BOOST_TEST(co_await net::this_coro::throw_if_cancelled());
        BOOST_TEST(co_await fanout::detail::cancellation_not_thrown(section(false)) == 7);
        BOOST_TEST(co_await net::this_coro::throw_if_cancelled());
        bool thrown = false;
        try {
            co_await fanout::detail::cancellation_not_thrown(section(true));
        } catch (std::runtime_error const&) {
            thrown = true;
        }
        BOOST_TEST(thrown);
        BOOST_TEST(co_await net::this_coro::throw_if_cancelled());
        // A section of on_each callbacks that throws, through completions::each.
        auto arriving = as_completed(co_await net::this_coro::executor, children(after(1ms, 1)));
        thrown = false;
        try {
            co_await arriving.each([](std::size_t, outcome<int>) { throw std::runtime_error("on_each"); });
        } catch (std::runtime_error const&) {
            thrown = true;
        }
        BOOST_TEST(thrown);
        bool const after_each = co_await net::this_coro::throw_if_cancelled();
        co_return after_each ? 1 : 0;
    };
    BOOST_TEST(run(ioc, check()) == 1);
}

// A channel's close() does not complete a send blocked on it, and cancel() after close() completes
// it with no error, as if delivered. fanout's channels (as_completed's, and a streamed route's
// lines) are never closed and have a slot for every value that can be sent: try_send never waits.
BOOST_AUTO_TEST_CASE(channel_close_leaves_a_blocked_send_waiting__a_slot_per_producer) {
    written_for_boost_181();
    net::io_context ioc;
    net::experimental::channel<void(error_code, int)> unbuffered{ioc, 0};
    std::optional<error_code> sent;
    unbuffered.async_send(error_code{}, 1, [&](error_code ec) { sent = ec; });
    unbuffered.close();
    ioc.poll();
    library_still(!sent, "leaves a send blocked on a channel waiting after close()");
    unbuffered.cancel();
    ioc.poll();
    library_still(sent && !*sent, "completes a send blocked on a closed channel with no error on cancel()");

    // Every child completes before the reader looks: each outcome waits in the channel.
    std::vector<net::awaitable<std::string>> kids;
    for (auto s : {"a", "b", "c"}) kids.push_back(text(s));
    auto read_later = [](std::vector<net::awaitable<std::string>> c) -> net::awaitable<std::string> {
        auto arriving = as_completed(co_await net::this_coro::executor, std::move(c));
        net::steady_timer pause{co_await net::this_coro::executor, 20ms};
        co_await pause.async_wait(net::use_awaitable);
        std::string all;
        co_await arriving.each([&](std::size_t, outcome<std::string> o) { all += *o.value; });
        co_return all;
    };
    BOOST_TEST(run(ioc, read_later(std::move(kids))).size() == 3u);

    // A streamed route's parts and summary, all put in before the connection takes any.
    route_plan route;
    for (auto key : {"a", "b", "c"}) {
        route.backends.emplace_back();
        route.backends.back().key = key;
    }
    ndjson_parts parts{ioc.get_executor(), route, std::chrono::steady_clock::now()};
    std::vector<fetch_result> results(3);
    for (std::size_t i = 0; i < 3; ++i) {
        results[i].body = "{}";
        parts.part(i, results[i]);
    }
    parts.done(results, 200);
    auto lines = run(ioc, parts.next());
    BOOST_TEST(std::count(lines.begin(), lines.end(), '\n') == 4);
    BOOST_TEST(lines.find(R"({"complete":true)") != std::string::npos);
}

// Cancelling a receive waiting on a channel leaves the channel refusing try_send, even with room
// in its buffer. as_completed never cancels its receive (it is bound to an empty slot): the
// reader's cancellation goes to the children, whose outcomes then arrive.
BOOST_AUTO_TEST_CASE(cancelled_channel_receive_breaks_later_sends__receive_never_cancelled) {
    written_for_boost_181();
    net::io_context ioc;
    net::experimental::channel<void(error_code, int)> ch{ioc, 2};
    net::cancellation_signal cancel;
    ch.async_receive(net::bind_cancellation_slot(cancel.slot(), [](error_code, int) {}));
    cancel.emit(net::cancellation_type::terminal);
    ioc.poll();
    library_still(
        !ch.try_send(error_code{}, 1), "refuses try_send on a channel after a receive was cancelled"
    );

    auto errors = run(ioc, errors_through_next(children(after(1h, 0), after(1h, 1))), 50ms);
    BOOST_TEST_REQUIRE(errors.size() == 2u);
    for (auto const& e : errors) BOOST_TEST((e == net::error::operation_aborted));
}

// The slot of this_coro::cancellation_state is cleared each time the coroutine resumes, so a
// handler assigned to it is gone after the first wait. as_completed puts its handler back before
// each receive, so that a cancellation that comes after some outcomes still reaches the children.
BOOST_AUTO_TEST_CASE(awaitable_slot_cleared_at_each_resume__handler_put_back) {
    written_for_boost_181();
    net::io_context ioc;
    auto kept_across_a_resume = []() -> net::awaitable<bool> {
        auto cs = co_await net::this_coro::cancellation_state;
        cs.slot().assign([](net::cancellation_type) {});
        auto ex = co_await net::this_coro::executor;
        co_await net::post(ex, net::use_awaitable);
        co_return cs.slot().has_handler();
    };
    library_still(
        !run(ioc, kept_across_a_resume()), "clears the coroutine's cancellation slot when it resumes"
    );

    auto errors = run(ioc, errors_through_each(children(after(1ms, 0), after(1h, 1), after(1h, 2))), 50ms);
    BOOST_TEST_REQUIRE(errors.size() == 3u);
    BOOST_TEST(!errors[0]);
    BOOST_TEST((errors[1] == net::error::operation_aborted));
    BOOST_TEST((errors[2] == net::error::operation_aborted));
}

// co_spawn still uses the cancellation signal bound to a coroutine after the coroutine's body has
// ended (when it ends without suspending), so a body that releases the last owner of its signal
// frees memory still in use. as_completed gives each child's completion handler a share of the
// signals (consign). Only ASan sees a break, and only with Asio's recycling cache off (as in the
// sanitizer builds): the children run after the completions are gone and end without suspending.
BOOST_AUTO_TEST_CASE(cospawn_uses_the_signal_after_the_coroutine_ends__signal_consigned) {
    written_for_boost_181();
    net::io_context ioc;
    auto live = std::make_shared<std::size_t>(0);
    {
        std::vector<net::awaitable<std::string>> kids;
        for (int i = 0; i < 3; ++i) kids.push_back(text("at once"));
        auto dropped = as_completed(ioc.get_executor(), std::move(kids), live);
    }
    ioc.run_for(1s);
    BOOST_TEST(*live == 0u);
}

// Asio keeps freed blocks (coroutine frames, cancellation handlers, operations) in a per-thread
// cache for reuse, where a sanitizer cannot see a use after free. The sanitizer builds define
// BOOST_ASIO_RECYCLING_ALLOCATOR_CACHE_SIZE=0 for the whole tree (it sets the size of Asio's
// per-thread state, so every translation unit must agree).
BOOST_AUTO_TEST_CASE(asan_blind_to_recycled_memory__no_recycling_in_sanitizer_builds) {
    written_for_boost_181();
    net::io_context ioc;
    void* freed = nullptr;
    void* next = nullptr;
    bool asan_sees_it_freed = true;
    net::post(ioc, [&] {
        net::recycling_allocator<char> a;
        freed = a.allocate(200);
        a.deallocate(static_cast<char*>(freed), 200);
#if defined(FANOUT_TEST_ASAN)
        asan_sees_it_freed = __asan_address_is_poisoned(freed);
#endif
        next = a.allocate(100);  // smaller: only Asio's cache gives the freed block back
        a.deallocate(static_cast<char*>(next), 100);
    });
    ioc.run();
    bool const cached = BOOST_ASIO_RECYCLING_ALLOCATOR_CACHE_SIZE > 0;
    library_still((next == freed) == cached, "recycles freed blocks through a per-thread cache");
    BOOST_TEST(!(sanitized && cached));
    BOOST_TEST(asan_sees_it_freed);
}

// Asio 1.81 gives any_io_executor no default completion token. fanout's initiating functions
// given none use `deferred` (as later Asio does), so the operation is a child for the combinators.
BOOST_AUTO_TEST_CASE(no_default_token_for_any_io_executor__deferred) {
    written_for_boost_181();
    library_still(
        std::is_void_v<net::default_completion_token_t<net::any_io_executor>>,
        "lacks a default completion token for any_io_executor"
    );
    echo_upstream upstream;
    net::io_context ioc;
    fanout::client c{ioc.get_executor(), {make_service("echo", upstream.url("/x"))}, {}};
    auto [fetched] = run(ioc, within(10s, c.async_fetch(0)));
    BOOST_TEST_REQUIRE(fetched.value.has_value());
    BOOST_TEST(fetched.value->ok());
}

// http::async_read reads a message in a loop of socket reads that never looks at cancellation:
// a one-shot cancel (a deadline's timer, a lost race) that comes while no read is pending is lost,
// and against a peer that sends without pause the read goes on to the end. fanout reads with its
// own loop (wire::read_message), each socket read a co_await of the cancelled coroutine.
BOOST_AUTO_TEST_CASE(busy_read_loses_a_one_shot_cancel__own_read_loop) {
    written_for_boost_181();
    auto beast = read_cancelled_once(true);
    library_still(
        !beast.ec && beast.body_read == sent_body, "lets http::async_read read on after a cancellation"
    );
    auto own = read_cancelled_once(false);
    BOOST_TEST((own.ec == net::error::operation_aborted), own.ec.message());
    BOOST_TEST(own.body_read < sent_body);
}

// Beast's parser limits the head and the body, but neither a chunk-size line (with its extensions)
// nor the trailer section: given more of one, it consumes nothing and asks for more, so the
// caller's buffer grows as long as the peer sends. guarded_parser::put_within holds each to the
// head limit, and read_message's buffer stays below it.
BOOST_AUTO_TEST_CASE(beast_bounds_no_chunk_line_nor_trailers__put_within) {
    written_for_boost_181();
    http::response_parser<http::empty_body> beast;
    beast.header_limit(1024);
    error_code beast_ec;
    std::string const chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    beast.put(net::buffer(chunked), beast_ec);
    std::string const long_line = "2;e=" + std::string(std::size_t(1) << 20, 'a');
    auto const used = beast.put(net::buffer(long_line), beast_ec);
    library_still(
        used == 0 && beast_ec == http::error::need_more, "asks for more of a chunk-size line beyond any limit"
    );

    auto feed = [](std::string const& head, std::string_view piece) {
        fanout::response_parser parser;
        boost::beast::flat_buffer buffer;
        auto data = head;
        error_code ec = http::error::need_more;
        for (int round = 0; round < 1000 && ec == http::error::need_more; ++round) {
            buffer.commit(net::buffer_copy(buffer.prepare(data.size()), net::buffer(data)));
            ec = wire::parse_buffered(parser, buffer, 1024);
            BOOST_TEST_REQUIRE(buffer.size() <= 1024 + data.size());
            data = std::string(piece);
        }
        return ec;
    };
    BOOST_TEST((feed(chunked + "2;e=", "aaaaaaaa") == http::error::buffer_overflow));
    BOOST_TEST((feed(chunked + "0\r\n", "X-T: 1\r\n") == http::error::buffer_overflow));
    BOOST_TEST((feed("HTTP/1.1 200 OK\r\n", "X-H: 1\r\n") == http::error::header_limit));
}

// Beast's parser asserts (`n >= 5`, in parse_chunk_header) when an empty chunked body's last chunk
// "0\r\n" comes with fewer than two more bytes, which a peer decides; debug and sanitizer builds
// abort, release builds parse on correctly. guarded_parser holds those bytes back until five are
// there (min_put). So only a debug or sanitizer build can see this test fail.
BOOST_AUTO_TEST_CASE(beast_asserts_on_split_empty_chunk__guarded_parser) {
    written_for_boost_181();
    std::string const request = "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    std::string const response = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n\r\n";
    std::string const with_data = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
    for (std::size_t i = 0; i <= request.size(); ++i)
        for (std::size_t j = i; j <= request.size(); ++j)
            BOOST_TEST_REQUIRE(!parse_split<fanout::request_parser>(request, i, j), i << "," << j);
    for (auto const& message : {response, with_data})
        for (std::size_t i = 0; i <= message.size(); ++i)
            for (std::size_t j = i; j <= message.size(); ++j)
                BOOST_TEST_REQUIRE(!parse_split<fanout::response_parser>(message, i, j), i << "," << j);
}

// A response parser ends its message at an interim answer (1xx, e.g. 103 Early Hints), and the
// final answer follows on the connection. The client reads again until the final answer, so that
// the connection goes back to the pool in step.
BOOST_AUTO_TEST_CASE(parser_ends_at_a_1xx__client_reads_again) {
    written_for_boost_181();
    http::response_parser<http::empty_body> beast;
    beast.eager(true);
    error_code ec;
    std::string const answers =
        "HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    auto const used = beast.put(net::buffer(answers), ec);
    library_still(
        beast.is_done() && beast.get().result_int() == 103 && used < answers.size(),
        "ends a response at a 103"
    );

    harness h{{sim("users", sim_behaviour::early_hints), sim("orders")}};
    for (int i = 0; i < 21; ++i) {
        auto a = get(h.port(), "/api/aggregate/wg");
        BOOST_TEST_REQUIRE(a.status == 200u);
        BOOST_TEST_REQUIRE(a.complete_header == "true");
        BOOST_TEST_REQUIRE(a.body.at("results").at("users") == json::parse(fanout::sim_body("users")));
    }
    BOOST_TEST(h.counters("users").connections <= h.threads());  // every fetch after the first reused one
}

// Neither Asio nor Beast tells a server that its client left without a read on the connection,
// and a read would take a pipelined request's bytes. While a deadline-bound request is handled,
// the server waits for readability and peeks (MSG_PEEK): end of stream or a reset cancels the
// request; bytes are the next request, left where they are.
BOOST_AUTO_TEST_CASE(disconnect_unseen_without_a_read__watch_peeks) {
    written_for_boost_181();
    harness h{{sim("users"), sim("orders", sim_behaviour::hang)}};
    {
        blocking_client gone{h.port()};
        gone.send_get(context_timeout + "?timeout_ms=10000");
        BOOST_TEST_REQUIRE(eventually([&] { return h.counters("orders").requests == 1; }));
        gone.close();
        // The hung fetch is cancelled when the client goes, long before the deadline.
        BOOST_TEST(eventually([&] { return h.counters("orders").abandoned == 1; }));
    }
    // The next request arrives while the first is handled (waiting for the hung upstream).
    blocking_client pipelining{h.port()};
    pipelining.send_get(context_timeout + "?timeout_ms=500");
    BOOST_TEST_REQUIRE(eventually([&] { return h.counters("orders").requests == 2; }));
    pipelining.send_get(context_timeout + "?timeout_ms=500");
    for (int i = 0; i < 2; ++i) {
        auto res = pipelining.read();
        BOOST_TEST_REQUIRE(res.has_value());
        BOOST_TEST(res->result_int() == 200u);
        BOOST_TEST(json::parse(res->body()).at("pattern").as_string() == "context-timeout");
    }
}

// Boost.URL takes "http://[::1]:9:02/" as port 9 and path ":02/". fanout refuses an upstream URL
// whose path does not start with '/', which would make a malformed request line.
BOOST_AUTO_TEST_CASE(url_takes_a_colon_after_the_port_for_the_path__path_must_start_with_a_slash) {
    written_for_boost_181();
    auto u = boost::urls::parse_uri("http://[::1]:9:02/");
    library_still(
        u.has_value() && u->port() == "9" && u->encoded_path() == ":02/", "parses a second port as the path"
    );
    BOOST_CHECK_THROW(make_service("a", "http://[::1]:9:02/"), std::invalid_argument);
    BOOST_TEST(make_service("a", "http://[::1]:9/x:y").target == "/x:y");
}

BOOST_AUTO_TEST_SUITE_END()
