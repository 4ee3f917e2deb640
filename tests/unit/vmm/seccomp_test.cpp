// The filter is tried in forked children: once installed it cannot be taken off.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/kvm.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <string>
#include <thread>

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

// The calls the filter must refuse for their arguments, each harmless on its own: TIOCSTI on a pipe
// (ENOTTY), a netlink socket, a fork into a new user namespace. Each returns its errno (0 on success);
// the forked clone child leaves at once.
int tiocsti_on_a_pipe() {
    int fds[2];
    if (::pipe(fds) != 0) return -1;
    char c = 'x';
    return ::ioctl(fds[0], TIOCSTI, &c) == 0 ? 0 : errno;
}
int netlink_socket() {
    int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    ::close(fd);
    return 0;
}
int clone_into_new_user_namespace() {
    long pid = ::syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
    if (pid == 0) ::_exit(0);
    if (pid < 0) return errno;
    int status;
    ::waitpid(static_cast<pid_t>(pid), &status, 0);
    return 0;
}

int new_io_uring() {
    io_uring_params params{};
    long fd = ::syscall(SYS_io_uring_setup, 8, &params);
    if (fd < 0) return errno;
    ::close(static_cast<int>(fd));
    return 0;
}

// A child that installs the filter `mode`, makes `call`, and returns 12 if it survived.
template <class Call>
Child refused_in_child(SeccompMode mode, Call call) {
    return in_child([mode, call] {
        if (!install_seccomp(mode)) return 10;
        call();
        return 12;
    });
}

void check_refused(const Child& c, const char* call_name, const char* argument) {
    REQUIRE(WIFEXITED(c.status));
    CHECK(WEXITSTATUS(c.status) == 1);
    CHECK(c.err.find(std::string("(") + call_name + "), which its filter does not allow") != std::string::npos);
    CHECK(c.err.find(argument) != std::string::npos);
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
    if (seccomp_unavailable_in_this_build()) {
        MESSAGE("sanitizer build: kite runs without the filter, nothing to test");
        return;
    }
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

TEST_CASE("with the filter on, ioctl TIOCSTI, a netlink socket and clone into a new namespace are refused") {
    if (seccomp_unavailable_in_this_build()) {
        MESSAGE("sanitizer build: kite runs without the filter, nothing to test");
        return;
    }
    check_refused(refused_in_child(SeccompMode::On, tiocsti_on_a_pipe), "ioctl", ", 0x5412)");
    check_refused(refused_in_child(SeccompMode::On, netlink_socket), "socket", "arguments 0x10,");
    check_refused(refused_in_child(SeccompMode::On, clone_into_new_user_namespace), "clone", "arguments 0x10000011,");
}

TEST_CASE("with the filter on, no new io_uring ring: Kite's own are made before, restricted") {
    if (seccomp_unavailable_in_this_build()) {
        MESSAGE("sanitizer build: kite runs without the filter, nothing to test");
        return;
    }
    check_refused(refused_in_child(SeccompMode::On, new_io_uring), "io_uring_setup", "arguments 0x8,");
}

TEST_CASE("with the filter on, threads start, Unix sockets open and Kite's own ioctls are allowed") {
    if (seccomp_unavailable_in_this_build()) {
        MESSAGE("sanitizer build: kite runs without the filter, nothing to test");
        return;
    }
    auto c = in_child([] {
        if (!install_seccomp(SeccompMode::On)) return 10;
        bool ran = false;
        std::thread([&ran] { ran = true; }).join();  // clone3 answers ENOSYS, glibc falls back to clone
        if (!ran) return 11;
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 12;
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return 13;
        int on = 1;
        if (::ioctl(sv[0], FIONBIO, &on) != 0) return 14;  // asio's non-blocking switch
        if (::isatty(sv[0])) return 15;                     // TCGETS: allowed, and a socket is no terminal
        int kvm = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (kvm >= 0 && ::ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) return 16;
        return kvm >= 0 ? 0 : 1;
    });
    REQUIRE(WIFEXITED(c.status));
    CHECK(c.err == "");
    CHECK(WEXITSTATUS(c.status) <= 1);
    if (WEXITSTATUS(c.status) == 1) MESSAGE("no /dev/kvm here: KVM_GET_API_VERSION not tried");
}

TEST_CASE("log mode and off let TIOCSTI, netlink sockets and namespace clones through (to the kernel)") {
    for (SeccompMode mode : {SeccompMode::Log, SeccompMode::Off}) {
        CAPTURE(static_cast<int>(mode));
        auto c = in_child([mode] {
            if (!install_seccomp(mode)) return 10;
            // The kernel's own answers: a pipe is no terminal; user namespaces may be disabled here.
            if (tiocsti_on_a_pipe() != ENOTTY) return 11;
            if (netlink_socket() != 0) return 12;
            if (int e = clone_into_new_user_namespace(); e != 0 && e != EPERM && e != ENOSPC) return 13;
            return 0;
        });
        REQUIRE(WIFEXITED(c.status));
        CHECK(WEXITSTATUS(c.status) == 0);
    }
}
