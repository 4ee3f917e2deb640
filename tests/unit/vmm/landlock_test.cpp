// Landlock is tried in forked children: once in, it cannot be taken off.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "vmm/landlock.h"
#include "vmm/landlock_paths.h"
#include "vmm/seccomp.h"

using namespace kite;

namespace {

struct TempDir {
    std::string path;
    TempDir() {
        char name[] = "/tmp/kite-landlock-XXXXXX";
        REQUIRE(::mkdtemp(name) != nullptr);
        path = name;
    }
    ~TempDir() {
        for (const char* f : {"/snap", "/snap.tmp", "/other"}) ::unlink((path + f).c_str());
        ::rmdir(path.c_str());
    }
};

// Runs body in a child; returns its exit status (-1 if it did not exit).
template <class Body>
int in_child(Body body) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) ::_exit(body());
    int status;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// errno of opening `path` with `flags` (0 when it opened).
int open_errno(const std::string& path, int flags) {
    int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0600);
    if (fd < 0) return errno;
    ::close(fd);
    return 0;
}

}  // namespace

TEST_CASE("the writable directory is the control socket's, and none without a control socket") {
    VmConfig config;
    CHECK(landlock_paths(config).writable_dirs.empty());
    config.control_socket = "/run/kite/vm1/api.sock";
    CHECK(landlock_paths(config).writable_dirs == std::vector<std::string>{"/run/kite/vm1"});
    config.control_socket = "api.sock";
    CHECK(landlock_paths(config).writable_dirs == std::vector<std::string>{"."});
    config.control_socket = "/api.sock";
    CHECK(landlock_paths(config).writable_dirs == std::vector<std::string>{"/"});
}

TEST_CASE("under Landlock, Kite writes snapshots in its directory and opens nothing else") {
    if (seccomp_unavailable_in_this_build()) {
        MESSAGE("sanitizer build: kite runs without Landlock, nothing to test");
        return;
    }
    if (landlock_abi() == 0) {
        MESSAGE("no Landlock in this kernel: kite goes on without it, nothing to test");
        return;
    }
    TempDir allowed, other;
    int before = ::open("/etc/passwd", O_RDONLY | O_CLOEXEC);
    REQUIRE(before >= 0);
    int status = in_child([&] {
        auto r = install_landlock(LandlockPaths{{allowed.path}});
        if (!r || !*r) return 10;
        // What a snapshot does: create a private temporary file, reopen it through /proc for direct
        // I/O, write, rename over the old one.
        int fd = ::open((allowed.path + "/snap.tmp").c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) return 11;
        if (open_errno("/proc/self/fd/" + std::to_string(fd), O_WRONLY) != 0) return 12;
        if (::write(fd, "s", 1) != 1) return 13;
        ::close(fd);
        if (::rename((allowed.path + "/snap.tmp").c_str(), (allowed.path + "/snap").c_str()) != 0) return 14;
        // Refused: reading any other file, writing elsewhere, executing.
        if (open_errno("/etc/passwd", O_RDONLY) != EACCES) return 20;
        if (open_errno(other.path + "/other", O_WRONLY | O_CREAT) != EACCES) return 21;
        if (open_errno(allowed.path + "/snap", O_RDONLY) != EACCES) return 22;
        // A descriptor opened before keeps working.
        char c;
        if (::pread(before, &c, 1, 0) != 1) return 30;
        return 0;
    });
    ::close(before);
    CHECK(status == 0);
    struct stat st;
    CHECK(::stat((allowed.path + "/snap").c_str(), &st) == 0);
    CHECK(::stat((other.path + "/other").c_str(), &st) != 0);
}
