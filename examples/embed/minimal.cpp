// The smallest application embedding fanout's server, shown whole in docs/library.md; a test checks
// that the copy there is this file, so that the snippet compiles as written.
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <fanout/http_server.hpp>

int main() {
    boost::asio::io_context ioc{1};
    fanout::options opts;
    opts.listen_port = 0;
    opts.upstreams.push_back(fanout::parse_service("users=http://127.0.0.1:9101/users"));
    fanout::http_server server{ioc.get_executor(), opts};
    server.async_run(boost::asio::detached);
    ioc.run();  // returns after server.shutdown() or server.cancel() once all is closed
}
