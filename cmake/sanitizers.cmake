# ASan+UBSan for the whole build (library, tools and tests), so that g++ 12's coroutine
# lifetime bugs (see NOTES) turn into failures instead of silent corruption.
if(FANOUT_SANITIZE)
    set(_fanout_san -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
    add_compile_options(${_fanout_san})
    add_link_options(${_fanout_san})
endif()
