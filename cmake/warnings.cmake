add_library(fanout_warnings INTERFACE)
target_compile_options(fanout_warnings INTERFACE
    $<$<CXX_COMPILER_ID:GNU,Clang>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor>
)
# CI builds with warnings as errors (g++ and clang); a plain build does not, so that a newer
# compiler's new warning never stops someone building a release.
option(FANOUT_WERROR "Treat compiler warnings as errors" OFF)
if(FANOUT_WERROR)
    target_compile_options(fanout_warnings INTERFACE -Werror)
endif()
