# FANOUT_SANITIZE=address: ASan+UBSan, so that g++ 12's coroutine lifetime bugs (values destroyed
# twice around co_await in braced initialisers, ?: and lambda captures) turn into failures instead
# of silent corruption. FANOUT_SANITIZE=thread: TSan, for --threads > 1.
# Applied to the whole build: library, tools and tests.
set(FANOUT_SANITIZE "" CACHE STRING "Sanitizers: address (ASan+UBSan), thread (TSan), or empty")
set_property(CACHE FANOUT_SANITIZE PROPERTY STRINGS "" address thread)
if(FANOUT_SANITIZE STREQUAL "address" OR FANOUT_SANITIZE STREQUAL "ON")
    set(_fanout_san -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
elseif(FANOUT_SANITIZE STREQUAL "thread")
    set(_fanout_san -fsanitize=thread -fno-omit-frame-pointer)
elseif(NOT FANOUT_SANITIZE STREQUAL "" AND NOT FANOUT_SANITIZE STREQUAL "OFF")
    message(FATAL_ERROR "FANOUT_SANITIZE must be address, thread or empty, not '${FANOUT_SANITIZE}'")
endif()
if(_fanout_san)
    add_compile_options(${_fanout_san})
    add_link_options(${_fanout_san})
    # Asio otherwise keeps freed coroutine frames and cancellation handlers in a per-thread cache,
    # where the sanitizers cannot see a use after free. For the whole tree (every translation unit
    # must agree: it sets the size of Asio's per-thread state), never on the exported target.
    add_compile_definitions(BOOST_ASIO_RECYCLING_ALLOCATOR_CACHE_SIZE=0)
endif()
