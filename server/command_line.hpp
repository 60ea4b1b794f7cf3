#pragma once

// The fanout program's command line. Not part of the library: an application embedding fanout
// has its own, and fills fanout::options (or reads a config file with apply_config).

#include <fanout/options.hpp>
#include <string>

namespace fanout {

struct command_line {
    // check (--check): validate as a start would, print the effective configuration, start nothing.
    enum class action { run, help, version, check };
    action what = action::run;
    std::string help;  // the usage text, for action::help
    options opts;
    std::string config;  // the --config file; empty without one (a reload then has nothing to read)
};

// Parses fanout's command line, reading --config FILE.json first when given (flags win over it).
// Throws std::exception with a one-line message naming the flag or the config key.
command_line parse_command_line(int argc, char const* const* argv);

}  // namespace fanout
