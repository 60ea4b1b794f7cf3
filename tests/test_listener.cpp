#include "server/listener.hpp"
#include "tests/paths.hpp"
#include "tests/process.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/system/system_error.hpp>
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace fanout;
using namespace std::chrono_literals;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

net::ip::address const loopback = net::ip::make_address("127.0.0.1");

// What open_listener threw, "" if nothing.
std::string listen_error(tcp::endpoint const& endpoint, bool reuse_port) {
    net::io_context ioc;
    try {
        fanout::open_listener(ioc.get_executor(), endpoint, reuse_port);
    } catch (boost::system::system_error const& e) {
        return e.what();
    }
    return "";
}

std::string in_use(std::string const& address, std::uint16_t port) {
    return "cannot listen on " + address + ":" + std::to_string(port) + ": Address already in use";
}

// A fanout process on loopback with two event loops, so with SO_REUSEPORT, as by default on a
// machine with several cores. The upstream is never asked.
struct fanout_on_two_loops {
    test::child_process process{
        {fanout::test_paths::fanout_binary, "--listen", "127.0.0.1:0", "--threads", "2", "--upstream",
         "a=http://127.0.0.1:9/a"}};
    std::uint16_t port = 0;

    fanout_on_two_loops() {
        auto line = process.read_line_starting("listening on http://127.0.0.1:", 10s);
        BOOST_TEST_REQUIRE(line.has_value());
        port = static_cast<std::uint16_t>(std::stoi(line->substr(line->rfind(':') + 1)));
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(test_listener)

BOOST_AUTO_TEST_CASE(errors_name_the_address_and_nothing_else) {
    net::io_context ioc;
    auto first = fanout::open_listener(ioc.get_executor(), {loopback, 0}, false);
    auto port = first.local_endpoint().port();
    BOOST_TEST(listen_error({loopback, port}, false) == in_use("127.0.0.1", port));
    // TEST-NET-1 is no address of this machine.
    BOOST_TEST(
        listen_error({net::ip::make_address("192.0.2.1"), 8080}, true) ==
        "cannot listen on 192.0.2.1:8080: Cannot assign requested address"
    );
}

BOOST_AUTO_TEST_CASE(the_loops_of_one_process_share_a_port) {
    net::io_context ioc;
    auto first = fanout::open_listener(ioc.get_executor(), {loopback, 0}, true);
    auto port = first.local_endpoint().port();
    auto second = fanout::open_listener(ioc.get_executor(), {loopback, port}, true);
    BOOST_TEST(second.local_endpoint().port() == port);
    // Without reuse_port the port stays taken, for this process too.
    BOOST_TEST(listen_error({loopback, port}, false) == in_use("127.0.0.1", port));
}

BOOST_AUTO_TEST_CASE(a_port_another_process_shares_among_its_loops_is_refused) {
    fanout_on_two_loops other;
    BOOST_TEST(listen_error({loopback, other.port}, true) == in_use("127.0.0.1", other.port));
    BOOST_TEST(listen_error({loopback, other.port}, false) == in_use("127.0.0.1", other.port));
    // The wildcard address would take the other's connections as well.
    BOOST_TEST(listen_error({net::ip::address_v4::any(), other.port}, true) == in_use("0.0.0.0", other.port));
}

// A dual-stack IPv6 listener on the wildcard address takes IPv4 connections too, and with
// SO_REUSEPORT an IPv4 listener could join it unseen: the kernel lists them apart.
BOOST_AUTO_TEST_CASE(a_dual_stack_listener_is_refused_before_binding) {
    net::io_context ioc;
    tcp::acceptor other{ioc};
    boost::system::error_code ec;
    other.open(tcp::v6(), ec);
    if (!ec) other.set_option(net::ip::v6_only(false), ec);
    if (!ec) other.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) other.bind({net::ip::address_v6::any(), 0}, ec);
    if (ec) {
        BOOST_WARN_MESSAGE(false, "no IPv6 here: " << ec.message());
        return;
    }
    int on = 1;
    BOOST_TEST_REQUIRE(setsockopt(other.native_handle(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) == 0);
    other.listen();
    auto port = other.local_endpoint().port();
    BOOST_TEST(listen_error({loopback, port}, true) == in_use("127.0.0.1", port));
}

// Two processes starting together may both bind before either listens; the later to listen then
// finds the earlier one's listener, not among its own sockets.
BOOST_AUTO_TEST_CASE(a_listener_that_came_meanwhile_is_found) {
    net::io_context ioc;
    tcp::acceptor other{ioc};
    other.open(tcp::v4());
    other.set_option(tcp::acceptor::reuse_address(true));
    int on = 1;
    BOOST_TEST_REQUIRE(setsockopt(other.native_handle(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) == 0);
    other.bind({loopback, 0});
    auto port = other.local_endpoint().port();

    // Bound but not listening, `other` goes unnoticed.
    auto ours = fanout::open_listener(ioc.get_executor(), {loopback, port}, true);
    int const own[] = {ours.native_handle()};
    BOOST_CHECK_NO_THROW(fanout::check_own_listeners({loopback, port}, own));

    other.listen();
    std::string error;
    try {
        fanout::check_own_listeners({loopback, port}, own);
    } catch (boost::system::system_error const& e) {
        error = e.what();
        BOOST_TEST((e.code() == net::error::address_in_use));
    }
    BOOST_TEST(error == in_use("127.0.0.1", port));
    int const both[] = {ours.native_handle(), other.native_handle()};
    BOOST_CHECK_NO_THROW(fanout::check_own_listeners({loopback, port}, both));
    // A listener elsewhere is no concern.
    BOOST_CHECK_NO_THROW(fanout::check_own_listeners({net::ip::make_address("127.0.0.2"), port}, own));
}

// The same, end to end: fanout is held right after each listen() (tests/listen_pause.cpp); the other
// process (this test) listens after fanout's last event loop has, when only the check of the
// listeners can find it. fanout must exit 1, not share the port.
#ifdef FANOUT_HAVE_LISTEN_PAUSE  // not in sanitizer builds, whose runtimes must be preloaded first
BOOST_AUTO_TEST_CASE(fanout_finds_a_listener_that_came_meanwhile) {
    net::io_context ioc;
    tcp::acceptor other{ioc};
    other.open(tcp::v4());
    // Not inherited by fanout, where it would count as its own.
    BOOST_TEST_REQUIRE(fcntl(other.native_handle(), F_SETFD, FD_CLOEXEC) == 0);
    other.set_option(tcp::acceptor::reuse_address(true));
    int on = 1;
    BOOST_TEST_REQUIRE(setsockopt(other.native_handle(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) == 0);
    other.bind({loopback, 0});
    auto port = other.local_endpoint().port();

    int notify[2];
    int resume[2];
    BOOST_TEST_REQUIRE(pipe(notify) == 0);
    BOOST_TEST_REQUIRE(pipe(resume) == 0);
    fcntl(notify[0], F_SETFD, FD_CLOEXEC);
    fcntl(resume[1], F_SETFD, FD_CLOEXEC);
    test::child_process fanout{
        {"/bin/sh", "-c",
         "export LD_PRELOAD=\"$1\" FANOUT_TEST_LISTEN_PAUSE=\"$2\"; exec \"$0\" --listen \"$3\" --threads 2 "
         "--upstream a=http://127.0.0.1:9/a 2>&1",
         fanout::test_paths::fanout_binary, fanout::test_paths::listen_pause,
         std::to_string(notify[1]) + "," + std::to_string(resume[0]), "127.0.0.1:" + std::to_string(port)}};
    close(notify[1]);
    close(resume[0]);
    char byte = 0;
    BOOST_TEST(read(notify[0], &byte, 1) == 1);  // the first event loop listens
    BOOST_TEST(write(resume[1], &byte, 1) == 1);
    BOOST_TEST(read(notify[0], &byte, 1) == 1);  // the second one too, past the check before binding
    other.listen();
    close(resume[1]);
    close(notify[0]);
    auto line = fanout.read_line_starting("", 10s);
    BOOST_TEST(line.value_or("(nothing)") == "fanout: " + in_use("127.0.0.1", port));
    auto status = fanout.wait(10s);
    BOOST_TEST_REQUIRE(status.has_value());
    BOOST_TEST(WIFEXITED(*status));
    BOOST_TEST(WEXITSTATUS(*status) == 1);
}
#endif

// The executable's contract: a port in use is exit code 1 with one line on stderr naming it, with
// one event loop (a plain bind fails) as with several (SO_REUSEPORT would let it share).
BOOST_AUTO_TEST_CASE(fanout_on_a_port_in_use_exits_1_naming_it) {
    fanout_on_two_loops other;
    for (char const* threads : {"1", "2"}) {
        BOOST_TEST_CONTEXT("--threads " << threads) {
            // stderr joins stdout, which is read: the error must be all that fanout prints.
            test::child_process second{
                {"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>&1", fanout::test_paths::fanout_binary, "--listen",
                 "127.0.0.1:" + std::to_string(other.port), "--threads", threads, "--upstream",
                 "a=http://127.0.0.1:9/a"}};
            auto line = second.read_line_starting("", 10s);
            BOOST_TEST(line.value_or("(nothing)") == "fanout: " + in_use("127.0.0.1", other.port));
            auto status = second.wait(10s);
            BOOST_TEST_REQUIRE(status.has_value());
            BOOST_TEST(WIFEXITED(*status));
            BOOST_TEST(WEXITSTATUS(*status) == 1);
            BOOST_TEST(!second.read_line_starting("", 1s).has_value());  // EOF: nothing more
        }
    }
}

BOOST_AUTO_TEST_SUITE_END()
