# The library's layers and the arrows between them (docs/architecture.md). Two uses of this file:
#
# include(cmake/layers.cmake) defines fanout_layer() and fanout_layer_check():
#   fanout_layer(NAME [USES LAYER...] SOURCES FILE...)
#     an OBJECT library fanout_NAME of the folder NAME/, linked to the layers it USES (which carry
#     their own uses along: a layer may use everything below the ones it names), and checked.
#   fanout_layer_check(TARGET T WHO TEXT USES LAYER... FILES FILE...)
#     makes the build of T fail when one of FILES includes a folder other than the LAYERs and
#     those below them (TEXT names FILES in the message).
#
# cmake -DRULE=... -DALLOWED=a,b -DFILES=f,g -DSTAMP=... -P cmake/layers.cmake is that check:
# it reads every `#include "FOLDER/..."` of FILES and names each file:line whose FOLDER is not
# in ALLOWED. It is a build step, so a forbidden include fails the build, not only a review.

if(CMAKE_SCRIPT_MODE_FILE)
    cmake_minimum_required(VERSION 3.25)
    string(REPLACE "," ";" allowed "${ALLOWED}")
    string(REPLACE "," ";" files "${FILES}")
    set(violations "")
    foreach(path IN LISTS files)
        file(READ "${SOURCE_DIR}/${path}" content)
        # One list element per line: characters that CMake's lists treat specially are made inert.
        string(REPLACE "\\" "/" content "${content}")
        string(REPLACE ";" "," content "${content}")
        string(REPLACE "[" "(" content "${content}")
        string(REPLACE "]" ")" content "${content}")
        string(REPLACE "\n" ";" lines "${content}")
        set(number 0)
        foreach(line IN LISTS lines)
            math(EXPR number "${number} + 1")
            if(line MATCHES "^[ \t]*#[ \t]*include[ \t]*\"([^\"/]+)/[^\"]*\"")
                if(NOT CMAKE_MATCH_1 IN_LIST allowed)
                    string(STRIP "${line}" line)
                    string(APPEND violations "${path}:${number}: ${line}: ${RULE}\n")
                endif()
            endif()
        endforeach()
    endforeach()
    if(violations)
        # NOTICE prints the lines as they are (FATAL_ERROR would wrap them), for editors to follow.
        message(NOTICE "${violations}")
        message(FATAL_ERROR "an include of a layer this code may not use: see docs/architecture.md")
    endif()
    file(TOUCH "${STAMP}")
    return()
endif()

# The layers each of ARGN may use: itself and everything below it.
function(fanout_layer_closure out)
    set(closure "")
    foreach(layer IN LISTS ARGN)
        get_property(below GLOBAL PROPERTY fanout_layer_below_${layer})
        list(APPEND closure ${layer} ${below})
    endforeach()
    list(REMOVE_DUPLICATES closure)
    list(SORT closure)
    set(${out} "${closure}" PARENT_SCOPE)
endfunction()

function(fanout_layer_check)
    cmake_parse_arguments(arg "" "TARGET;WHO" "USES;FILES" ${ARGN})
    fanout_layer_closure(allowed ${arg_USES})
    list(JOIN allowed ", " allowed_text)
    set(rule "${arg_WHO} may include ${allowed_text} only")
    list(JOIN allowed "," allowed_arg)
    list(JOIN arg_FILES "," files_arg)
    set(absolute "")
    foreach(path IN LISTS arg_FILES)
        list(APPEND absolute ${PROJECT_SOURCE_DIR}/${path})
    endforeach()
    set(stamp ${PROJECT_BINARY_DIR}/layers/${arg_TARGET}.checked)
    add_custom_command(
        OUTPUT ${stamp}
        COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${PROJECT_SOURCE_DIR} "-DRULE=${rule}" -DALLOWED=${allowed_arg}
                -DFILES=${files_arg} -DSTAMP=${stamp} -P ${PROJECT_SOURCE_DIR}/cmake/layers.cmake
        DEPENDS ${absolute} ${PROJECT_SOURCE_DIR}/cmake/layers.cmake
        COMMENT "Checking the includes of ${arg_TARGET}"
        VERBATIM
    )
    add_custom_target(${arg_TARGET}_includes DEPENDS ${stamp})
    add_dependencies(${arg_TARGET} ${arg_TARGET}_includes)
endfunction()

# The folder's headers are checked with its sources: a header is compiled wherever it is included.
function(fanout_layer name)
    cmake_parse_arguments(arg "" "" "USES;SOURCES" ${ARGN})
    fanout_layer_closure(below ${arg_USES})
    set_property(GLOBAL PROPERTY fanout_layer_below_${name} ${below})
    add_library(fanout_${name} OBJECT ${arg_SOURCES})
    if(BUILD_SHARED_LIBS)
        set_property(TARGET fanout_${name} PROPERTY POSITION_INDEPENDENT_CODE ON)
    endif()
    target_link_libraries(fanout_${name} PUBLIC fanout_layer_settings)
    foreach(layer IN LISTS arg_USES)
        target_link_libraries(fanout_${name} PUBLIC fanout_${layer})
    endforeach()
    file(GLOB headers CONFIGURE_DEPENDS RELATIVE ${PROJECT_SOURCE_DIR} ${PROJECT_SOURCE_DIR}/${name}/*.hpp)
    fanout_layer_check(
        TARGET fanout_${name} WHO "the ${name} layer" USES ${name} FILES ${arg_SOURCES} ${headers}
    )
endfunction()
