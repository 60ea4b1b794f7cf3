#pragma once

// Where the tests find the programs they start and the files they read. Defined in a source the
// build generates, so that no other test file is compiled with this checkout's absolute paths:
// those would make ccache miss every test file in another clone of the repository.

#include <string>
#include <string_view>

namespace fanout::test_paths {

extern char const* const fanout_binary;  // the fanout executable of this build
extern char const* const source_dir;     // the repository
extern char const* const listen_pause;   // tests/listen_pause.cpp's module; null when not built

// A file of the repository, from its path relative to the repository's root.
inline std::string source(std::string_view relative) {
    return std::string(source_dir) + "/" + std::string(relative);
}

}  // namespace fanout::test_paths
