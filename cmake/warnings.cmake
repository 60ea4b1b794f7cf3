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
# A unity build (CMAKE_UNITY_BUILD, as CI's sanitizer builds are made) includes each source into a
# generated one, where g++ takes a test's own types for a header's and warns of every template
# instantiated with one from an anonymous namespace.
if(CMAKE_UNITY_BUILD)
    target_compile_options(fanout_warnings INTERFACE $<$<CXX_COMPILER_ID:GNU>:-Wno-subobject-linkage>)
endif()
