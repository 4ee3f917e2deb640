// Snapshot files are written where a local user may have planted something: the temporary file must be
// created afresh, never through a symlink, and readable by its owner only.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "base/fd.h"
#include "vmm/snapshot/snapshot.h"

using namespace kite;

TEST_CASE("a symlink planted at PATH.tmp receives nothing, and the snapshot is written 0600 whatever the umask") {
    const std::string dir = "/tmp/kite-planted-" + std::to_string(::getpid());
    REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
    const std::string path = dir + "/vm.snap", victim = dir + "/victim";
    UniqueFd victim_fd(::open(victim.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    REQUIRE(victim_fd);
    REQUIRE(::symlink(victim.c_str(), (path + ".tmp").c_str()) == 0);
    const std::vector<uint8_t> bytes(100, 0x5a);

    mode_t old = ::umask(0);
    auto written = write_file_atomically(path, bytes, "snapshot");
    ::umask(old);

    struct stat victim_st {}, st {};
    REQUIRE(::stat(victim.c_str(), &victim_st) == 0);
    REQUIRE(::lstat(path.c_str(), &st) == 0);
    const bool tmp_left = ::access((path + ".tmp").c_str(), F_OK) == 0;
    ::unlink(path.c_str());
    ::unlink((path + ".tmp").c_str());
    ::unlink(victim.c_str());
    ::rmdir(dir.c_str());
    CHECK(written.has_value());
    CHECK(victim_st.st_size == 0);
    CHECK(S_ISREG(st.st_mode));
    CHECK(st.st_size == 100);
    CHECK((st.st_mode & 07777) == 0600);
    CHECK_FALSE(tmp_left);
}
