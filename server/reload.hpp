#pragma once

#include <boost/asio/io_context.hpp>

#include <fanout/http_server.hpp>
#include <fanout/options.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}

namespace fanout {

// What a new configuration changes, named as the configuration file names it.
struct config_changes {
    std::vector<std::string> settings;  // top-level keys whose value changed ("timeout_ms", ...)
    std::vector<std::string> services_added, services_removed, services_changed;  // by name
    std::vector<std::string> routes_added, routes_removed, routes_changed;        // by path template
};

// Compares two configurations as `fanout --check` prints them (every default filled in; without
// routes, the seed's four endpoints over the upstreams). A service is changed when any of its
// settings is, a route when anything of it is.
config_changes compare(options const& before, options const& after);

// The settings only a restart changes ("listen", "admin_listen", "threads"): those `next` changes
// are set back to `running`'s values in `next` and named in the result.
std::vector<std::string> keep_restart_settings(options& next, options const& running);

// The fanout program's reload, on SIGHUP: the command line is read again (so the --config file
// with it; flags still win) and checked as a start checks it. Valid, every server switches to it
// (http_server::async_reload) and one config_reload event says what changed; invalid, nothing
// changes and the event carries the error, the message `fanout --check` prints. Settings only a
// restart changes keep their value and are named in the event. Without --config there is nothing
// to read again: the event says so. Everything runs on `control`'s thread.
class process_reloader {
  public:
    process_reloader(
        boost::asio::io_context::executor_type control,
        std::vector<std::string> args,  // the command line, program name first
        options configured,             // as parsed, before the start changed anything
        std::vector<http_server*> servers,
        std::shared_ptr<spdlog::logger> log
    );

    // One reload; `done` is called on the control executor once it has ended (every server has
    // switched, or failed), after its event was logged.
    void reload(std::function<void()> done);

    // The configuration in use: the last one every server switched to.
    options const& configured() const noexcept { return configured_; }

  private:
    struct pending;
    void finish(std::shared_ptr<pending> p);

    // Not type-erased: the servers' completions carry it from loop to loop, and an erased executor
    // of this size is shared by reference counting, which TSan cannot follow (Asio's fences).
    boost::asio::io_context::executor_type control_;
    std::vector<std::string> args_;
    options configured_;
    std::vector<http_server*> servers_;
    std::shared_ptr<spdlog::logger> log_;
};

}  // namespace fanout
