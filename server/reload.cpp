#include "server/reload.hpp"

#include "server/check.hpp"
#include "server/command_line.hpp"
#include "server/config_dump.hpp"
#include "server/log.hpp"
#include "server/loop_engine.hpp"
#include "server/warnings.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/json/parse.hpp>
#include <boost/system/errc.hpp>

#include <spdlog/spdlog.h>

namespace fanout {

namespace json = boost::json;
namespace net = boost::asio;

namespace {

// As --check prints it, with the routes a server answers when none are configured.
json::object effective(options o) {
    if (o.routes.empty()) o.routes = default_routes(service_names(o));
    return json::parse(describe(o)).as_object();
}

// The members of two lists of objects, matched by their `key` member.
void compare_lists(
    json::value const* before,
    json::value const* after,
    std::string_view key,
    std::vector<std::string>& added,
    std::vector<std::string>& removed,
    std::vector<std::string>& changed
) {
    static json::array const none;
    auto const& old_list = before ? before->as_array() : none;
    auto const& new_list = after ? after->as_array() : none;
    auto find = [&](json::array const& list, json::value const& name) -> json::value const* {
        for (auto const& item : list)
            if (item.as_object().at(key) == name) return &item;
        return nullptr;
    };
    for (auto const& item : new_list) {
        auto const& name = item.as_object().at(key);
        auto const* old = find(old_list, name);
        if (!old)
            added.emplace_back(name.as_string());
        else if (*old != item)
            changed.emplace_back(name.as_string());
    }
    for (auto const& item : old_list) {
        auto const& name = item.as_object().at(key);
        if (!find(new_list, name)) removed.emplace_back(name.as_string());
    }
}

std::string json_list(std::vector<std::string> const& items) {
    std::string out = "[";
    for (auto const& item : items) out += (out.size() > 1 ? "," : "") + json_quote(item);
    return out + "]";
}

}  // namespace

config_changes compare(options const& before, options const& after) {
    auto const a = effective(before);
    auto const b = effective(after);
    config_changes out;
    for (auto const& [key, value] : b) {
        if (key == "upstreams" || key == "routes") continue;
        auto const* old = a.if_contains(key);
        if (!old || *old != value) out.settings.emplace_back(key);
    }
    compare_lists(
        a.if_contains("upstreams"), b.if_contains("upstreams"), "name", out.services_added,
        out.services_removed, out.services_changed
    );
    compare_lists(
        a.if_contains("routes"), b.if_contains("routes"), "path", out.routes_added, out.routes_removed,
        out.routes_changed
    );
    return out;
}

// The listening sockets are bound and the event loops are running: only a new process changes them.
std::vector<std::string> keep_restart_settings(options& next, options const& running) {
    std::vector<std::string> kept;
    if (next.listen_host != running.listen_host || next.listen_port != running.listen_port) {
        kept.emplace_back("listen");
        next.listen_host = running.listen_host;
        next.listen_port = running.listen_port;
    }
    if (next.admin_listen_host != running.admin_listen_host ||
        next.admin_listen_port != running.admin_listen_port) {
        kept.emplace_back("admin_listen");
        next.admin_listen_host = running.admin_listen_host;
        next.admin_listen_port = running.admin_listen_port;
    }
    if (next.threads != running.threads) {
        kept.emplace_back("threads");
        next.threads = running.threads;
    }
    return kept;
}

struct process_reloader::pending {
    std::string config;  // the file
    options next;
    config_changes changes;
    std::vector<std::string> restart_required;
    std::vector<std::string> warnings;
    std::size_t left = 0;      // servers still switching
    std::size_t switched = 0;  // servers that did
    std::string error;         // the first server's failure, if any
    std::function<void()> done;
};

process_reloader::process_reloader(
    net::io_context::executor_type control,
    std::vector<std::string> args,
    options configured,
    std::vector<http_server*> servers,
    std::shared_ptr<spdlog::logger> log
)
    : control_(std::move(control)),
      args_(std::move(args)),
      configured_(std::move(configured)),
      servers_(std::move(servers)),
      log_(std::move(log)) {
}

void process_reloader::reload(std::function<void()> done) {
    auto ended = [&] { net::post(control_, std::move(done)); };
    std::vector<char const*> argv;
    for (auto const& a : args_) argv.push_back(a.c_str());
    auto p = std::make_shared<pending>();
    try {
        auto cl = parse_command_line(static_cast<int>(argv.size()), argv.data());
        p->config = cl.config;
        if (p->config.empty()) {
            log_->warn(
                R"({"event":"config_reload","reloaded":false,"message":"started without --config: nothing to reload"})"
            );
            return ended();
        }
        p->next = std::move(cl.opts);
        p->restart_required = keep_restart_settings(p->next, configured_);
        check_startable(p->next);
    } catch (std::exception const& e) {
        log_->error(
            R"({{"event":"config_reload","reloaded":false,"config":{},"error":{}}})", json_quote(p->config),
            json_quote(e.what())
        );
        return ended();
    }
    p->changes = compare(configured_, p->next);
    p->warnings = config_warnings(p->next);
    p->next.logger = configured_.logger;
    p->left = servers_.size();
    p->done = std::move(done);
    for (auto* server : servers_) {
        auto one_done = [this, p](boost::system::error_code ec, std::string const& why) {
            if (ec && p->error.empty()) p->error = why.empty() ? ec.message() : why;
            if (!ec) ++p->switched;
            if (--p->left == 0) finish(p);
        };
        try {
            server->async_reload(
                p->next,
                net::bind_executor(control_, [one_done](boost::system::error_code ec) { one_done(ec, {}); })
            );
        } catch (std::exception const& e) {  // checked already: a file changed since, say
            net::post(control_, [one_done, why = std::string(e.what())] {
                one_done(make_error_code(boost::system::errc::invalid_argument), why);
            });
        }
    }
}

void process_reloader::finish(std::shared_ptr<pending> p) {
    if (!p->error.empty()) {
        // Stopping, or a file changed between the check and a server's switch: the servers that
        // switched (`switched` of them) serve the new configuration, the others the old one.
        log_->error(
            R"({{"event":"config_reload","reloaded":false,"config":{},"error":{},"switched":{},"servers":{}}})",
            json_quote(p->config), json_quote(p->error), p->switched, servers_.size()
        );
    } else {
        auto const& c = p->changes;
        auto const level = p->restart_required.empty() ? spdlog::level::info : spdlog::level::warn;
        log_->log(
            level,
            R"({{"event":"config_reload","reloaded":true,"config":{},"settings":{},"restart_required":{},)"
            R"("services":{{"added":{},"removed":{},"changed":{}}},"routes":{{"added":{},"removed":{},"changed":{}}},)"
            R"("warnings":{}}})",
            json_quote(p->config), json_list(c.settings), json_list(p->restart_required),
            json_list(c.services_added), json_list(c.services_removed), json_list(c.services_changed),
            json_list(c.routes_added), json_list(c.routes_removed), json_list(c.routes_changed),
            json_list(p->warnings)
        );
        configured_ = std::move(p->next);
        log_->set_level(spdlog::level::from_str(configured_.log_level));
    }
    p->done();
}

}  // namespace fanout
