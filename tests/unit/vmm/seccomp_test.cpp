// The filter is tried in forked children: once installed it cannot be taken off.
#include <doctest/doctest.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <string>

#include "vmm/seccomp.h"

using namespace kite;

namespace {

struct Child {
    int status = -1;
    std::string err;  // what it wrote to stderr
};

// Runs `body` in a child whose stderr goes to a pipe; the child ends with body's return value.
template <class Body>
Child in_child(Body body) {
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::dup2(pipe_fds[1], STDERR_FILENO);
        ::close(pipe_fds[0]);
        ::_exit(body());
    }
    ::close(pipe_fds[1]);
    Child c;
    char buf[512];
    for (ssize_t n; (n = ::read(pipe_fds[0], buf, sizeof buf)) > 0;) c.err.append(buf, static_cast<size_t>(n));
    ::close(pipe_fds[0]);
    REQUIRE(::waitpid(pid, &c.status, 0) == pid);
    return c;
}

// What a running VMM does: write, map and unmap memory, read the clock.
bool vmm_like_calls_work() {
    void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED || ::munmap(p, 4096) != 0) return false;
    timespec ts;
    return ::clock_gettime(CLOCK_MONOTONIC, &ts) == 0 && ::write(STDERR_FILENO, "ok\n", 3) == 3;
}

}  // namespace

TEST_CASE("with the filter on, a VMM's calls work and one outside the list ends Kite with status 1, named") {
    if (seccomp_unavailable_in_this_build()) {
        MESSAGE("sanitizer build: kite runs without the filter, nothing to test");
        return;
    }
    auto c = in_child([] {
        if (!install_seccomp(SeccompMode::On)) return 10;
        if (!vmm_like_calls_work()) return 11;
        ::syscall(SYS_personality, 0xffffffffUL);  // only a query, but not a call a VMM makes
        return 12;                                 // not reached
    });
    REQUIRE(WIFEXITED(c.status));
    CHECK(WEXITSTATUS(c.status) == 1);
    CHECK(c.err.find("ok\n") != std::string::npos);
    CHECK(c.err.find("system call 135 (personality), which its filter does not allow") != std::string::npos);
}

TEST_CASE("with the filter on, starting a program is refused") {
    if (seccomp_unavailable_in_this_build()) return;
    auto c = in_child([] {
        if (!install_seccomp(SeccompMode::On)) return 10;
        char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
        ::execv("/bin/true", argv);
        return 12;
    });
    REQUIRE(WIFEXITED(c.status));
    CHECK(WEXITSTATUS(c.status) == 1);
    CHECK(c.err.find("(execve)") != std::string::npos);
}

TEST_CASE("log mode and off leave every call allowed") {
    for (SeccompMode mode : {SeccompMode::Log, SeccompMode::Off}) {
        CAPTURE(static_cast<int>(mode));
        auto c = in_child([mode] {
            if (!install_seccomp(mode)) return 10;
            if (!vmm_like_calls_work()) return 11;
            return ::syscall(SYS_personality, 0xffffffffUL) == -1 ? 12 : 0;
        });
        REQUIRE(WIFEXITED(c.status));
        CHECK(WEXITSTATUS(c.status) == 0);
    }
}
