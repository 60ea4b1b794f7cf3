// The application's own translation unit that runs the io_context: it knows nothing of fanout and
// is compiled with none of fanout's settings, as in an application that links fanout into a
// program whose event loop lives elsewhere.
#include <boost/asio/io_context.hpp>

std::size_t run_application_loop(boost::asio::io_context& ioc) {
    return ioc.run();
}
