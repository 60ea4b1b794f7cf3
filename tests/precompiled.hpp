// The headers most test files include, compiled once per build (target_precompile_headers): each
// test file then parses only itself, which about halves a cold build of the tests.
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include <fanout/aggregator.hpp>
#include <fanout/client.hpp>
#include <fanout/combinators.hpp>
#include <fanout/http_server.hpp>
#include <future>
#include <spdlog/spdlog.h>
#include <string>
#include <thread>
#include <vector>
