#pragma once

// What the configuration file and the fanout program's command line share: the table of scalar
// settings, known both as a flag (--kebab-case) and a config key (snake_case), and reading a file.

#include <array>
#include <cstdint>
#include <fanout/options.hpp>
#include <functional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace fanout::detail {

struct setting {
    char const* flag;
    char const* key;
    char const* help;
    bool is_text;
    std::function<void(options&, std::string const& where, std::int64_t)> set_number;
    std::function<void(options&, std::string const& where, std::string const&)> set_text;
};

std::vector<setting> const& settings();

// The settings that are on or off: a flag that turns one on, or true or false in the file.
struct switch_setting {
    char const* flag;
    char const* key;
    char const* help;
    bool options::*member;
};
extern std::array<switch_setting, 3> const switches;

void set_access_log_sample(options& opts, std::string const& where, double value);

// apply_config(), returning the keys the text gave.
std::set<std::string> apply_config_keys(options& opts, std::string_view json_text);

// The text of a configuration file, read no further than 1 MiB (the path may name an endless
// stream); std::invalid_argument naming --config when it cannot be read or is larger.
std::string read_config(std::string const& path);

// Adds a service, refusing a name given twice (std::invalid_argument naming `where`).
void add_upstream(options& o, std::set<std::string>& names, service s, std::string const& where);

}  // namespace fanout::detail
