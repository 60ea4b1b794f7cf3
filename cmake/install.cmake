# Installs the library, its public headers (include/fanout/) and a CMake package, so that an
# application finds it with find_package(fanout CONFIG REQUIRED) and links fanout::fanout.
include(CMakePackageConfigHelpers)

set(FANOUT_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/fanout)
install(TARGETS fanout EXPORT fanout-targets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/fanout DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT fanout-targets NAMESPACE fanout:: DESTINATION ${FANOUT_CMAKE_DIR})
configure_package_config_file(
    ${CMAKE_CURRENT_LIST_DIR}/fanout-config.cmake.in ${PROJECT_BINARY_DIR}/fanout-config.cmake
    INSTALL_DESTINATION ${FANOUT_CMAKE_DIR}
)
write_basic_package_version_file(
    ${PROJECT_BINARY_DIR}/fanout-config-version.cmake COMPATIBILITY SameMinorVersion
)
install(FILES ${PROJECT_BINARY_DIR}/fanout-config.cmake ${PROJECT_BINARY_DIR}/fanout-config-version.cmake
    DESTINATION ${FANOUT_CMAKE_DIR}
)
if(FANOUT_BUILD_PROGRAMS)
    install(TARGETS fanout_main fanout-sim RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
