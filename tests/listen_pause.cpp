// Preloaded (LD_PRELOAD) into fanout by test_listener, to hold it right after a listen(): writes a
// byte to the descriptor NOTIFY, then waits for one (or EOF) on RESUME, as given by the environment
// variable FANOUT_TEST_LISTEN_PAUSE="NOTIFY,RESUME".
#include <cstdio>
#include <cstdlib>
#include <dlfcn.h>
#include <sys/socket.h>
#include <unistd.h>

extern "C" int listen(int fd, int backlog) noexcept {
    using listen_fn = int (*)(int, int);
    static auto const next = reinterpret_cast<listen_fn>(dlsym(RTLD_NEXT, "listen"));
    int const rc = next(fd, backlog);
    char const* spec = std::getenv("FANOUT_TEST_LISTEN_PAUSE");
    int notify = -1;
    int resume = -1;
    if (rc == 0 && spec && std::sscanf(spec, "%d,%d", &notify, &resume) == 2) {
        char byte = 0;
        if (write(notify, &byte, 1) == 1 && read(resume, &byte, 1) < 0) std::perror("listen_pause");
    }
    return rc;
}
