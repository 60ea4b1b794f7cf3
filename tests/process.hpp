#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace fanout::test {

// A child process with its stdout readable line by line, killed if still running at the end.
class child_process {
  public:
    explicit child_process(std::vector<std::string> argv);
    child_process(child_process const&) = delete;
    child_process& operator=(child_process const&) = delete;
    ~child_process();

    // The first stdout line starting with prefix, or nullopt at EOF or timeout.
    std::optional<std::string> read_line_starting(
        std::string const& prefix, std::chrono::milliseconds timeout
    );
    void signal(int sig);
    // The exit status (as from waitpid) once the process has ended, or nullopt at the timeout.
    std::optional<int> wait(std::chrono::milliseconds timeout);

  private:
    pid_t pid_ = -1;
    int out_ = -1;
    std::string pending_;
    std::optional<int> status_;
};

// How a process that was run to its end ended, and what it wrote.
struct finished_process {
    std::optional<int> status;  // as from waitpid; nullopt: still running at the timeout, then killed
    std::string out;
    std::string err;
};

// Runs argv to its end, its stdout and stderr captured, for at most `timeout`.
finished_process run_to_end(std::vector<std::string> argv, std::chrono::milliseconds timeout);

// A configuration file (fanout.json) in a fresh temporary directory, removed with it. Written whole
// by a rename, so that a process reloading it never reads half a file.
class config_file {
  public:
    explicit config_file(std::string const& text);
    ~config_file();
    config_file(config_file const&) = delete;
    config_file& operator=(config_file const&) = delete;

    std::string path() const { return (dir_ / "fanout.json").string(); }
    // Another file beside it (a CA file, say); its path.
    std::string write(std::string const& name, std::string const& text) const;
    void rewrite(std::string const& text) const;

  private:
    std::filesystem::path dir_;
};

}  // namespace fanout::test
