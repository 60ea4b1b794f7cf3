#include "tests/process.hpp"

#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <spawn.h>
#include <stdexcept>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace fanout::test {

child_process::child_process(std::vector<std::string> argv) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    int rc = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    out_ = fds[0];
    if (rc != 0) throw std::runtime_error("cannot start " + argv[0]);
}

child_process::~child_process() {
    if (!status_) {
        ::kill(pid_, SIGKILL);
        wait(std::chrono::seconds(5));
    }
    close(out_);
}

std::optional<std::string> child_process::read_line_starting(
    std::string const& prefix, std::chrono::milliseconds timeout
) {
    auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        for (auto nl = pending_.find('\n'); nl != std::string::npos; nl = pending_.find('\n')) {
            auto line = pending_.substr(0, nl);
            pending_.erase(0, nl + 1);
            if (line.rfind(prefix, 0) == 0) return line;
        }
        auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
        if (left.count() <= 0) return std::nullopt;
        pollfd p{out_, POLLIN, 0};
        if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
        char buf[4096];
        auto n = read(out_, buf, sizeof buf);
        if (n <= 0) return std::nullopt;
        pending_.append(buf, static_cast<std::size_t>(n));
    }
}

void child_process::signal(int sig) {
    ::kill(pid_, sig);
}

std::optional<int> child_process::wait(std::chrono::milliseconds timeout) {
    if (status_) return status_;
    auto until = std::chrono::steady_clock::now() + timeout;
    do {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
            status_ = status;
            return status_;
        }
        // I/O with another process: waitpid() has no timeout, so the child's exit is polled for,
        // bounded by `until`; the wait ends on the exit, not on the clock.
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    } while (std::chrono::steady_clock::now() < until);
    return std::nullopt;
}

finished_process run_to_end(std::vector<std::string> argv, std::chrono::milliseconds timeout) {
    int out[2];
    int err[2];
    if (pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    if (pipe2(err, O_CLOEXEC) != 0) {
        close(out[0]);
        close(out[1]);
        throw std::runtime_error("pipe failed");
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    pid_t pid = -1;
    int const rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    close(err[1]);
    finished_process result;
    if (rc != 0) {
        close(out[0]);
        close(err[0]);
        throw std::runtime_error("cannot start " + argv[0]);
    }
    // Both pipes are read until the process closes them (at its exit), so that neither fills up.
    auto const until = std::chrono::steady_clock::now() + timeout;
    pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    std::string* into[2] = {&result.out, &result.err};
    int open_pipes = 2;
    while (open_pipes > 0) {
        auto const left =
            std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        if (poll(fds, 2, static_cast<int>(left.count())) <= 0) continue;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char buf[4096];
            auto const n = read(fds[i].fd, buf, sizeof buf);
            if (n > 0) {
                into[i]->append(buf, static_cast<std::size_t>(n));
                continue;
            }
            fds[i].fd = -1;  // poll skips it from now on
            --open_pipes;
        }
    }
    close(out[0]);
    close(err[0]);
    int status = 0;
    do {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            result.status = status;
            return result;
        }
        // I/O with another process: waitpid() has no timeout, so the exit is polled for, bounded.
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    } while (std::chrono::steady_clock::now() < until);
    ::kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return result;
}

config_file::config_file(std::string const& text) {
    char dir[] = "/tmp/fanout-config-XXXXXX";
    if (!mkdtemp(dir)) throw std::runtime_error("mkdtemp failed");
    dir_ = dir;
    rewrite(text);
}

config_file::~config_file() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
}

std::string config_file::write(std::string const& name, std::string const& text) const {
    auto const p = (dir_ / name).string();
    std::ofstream{p} << text;
    return p;
}

void config_file::rewrite(std::string const& text) const {
    auto const next = dir_ / "next.json";
    std::ofstream{next} << text;
    std::filesystem::rename(next, path());
}

}  // namespace fanout::test
