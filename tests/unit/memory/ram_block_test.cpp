#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <cstring>
#include <string>

#include "memory/ram_block.h"
#include "proc_self.h"

using namespace kite;

namespace {
constexpr uint64_t MiB = 1 << 20;
}

TEST_CASE("RAM block bytes written through host() are visible through its fd") {
    auto block = RamBlock::create(4 * MiB, RamOffset(8 * MiB), HugePages::None, "test-ram");
    REQUIRE(block.has_value());
    std::memcpy(block->host() + 4096, "kite", 4);
    char back[4] = {};
    CHECK(::pread(block->fd(), back, 4, 4096) == 4);
    CHECK(std::string(back, 4) == "kite");
    CHECK(block->size() == 4 * MiB);
    CHECK(block->ram_offset() == RamOffset(8 * MiB));
}

TEST_CASE("RAM block starts zero-filled and is a shared memfd mapping") {
    auto block = RamBlock::create(64 * 1024, RamOffset(0), HugePages::None, "zero-ram");
    REQUIRE(block.has_value());
    CHECK(block->host()[0] == std::byte{0});
    CHECK(block->host()[64 * 1024 - 1] == std::byte{0});
    CHECK(test::mapping_perms(block->host()) == "rw-s");
    CHECK(test::mapping_path(block->host()).starts_with("/memfd:zero-ram"));
    CHECK(test::mapping_vmflags(block->host()).find(" hg") == std::string::npos);
}

TEST_CASE("transparent huge page RAM block is created") {
    auto block = RamBlock::create(4 * MiB, RamOffset(0), HugePages::Transparent, "thp-ram");
    REQUIRE(block.has_value());
    block->host()[4 * MiB - 1] = std::byte{7};
    CHECK(block->huge_pages() == HugePages::Transparent);
    CHECK(test::mapping_vmflags(block->host()).find(" hg") != std::string::npos);
    CHECK(block->host()[4 * MiB - 1] == std::byte{7});
}

TEST_CASE("auto huge page RAM block asks for transparent huge pages") {
    auto block = RamBlock::create(4 * MiB, RamOffset(0), HugePages::Auto, "auto-ram");
    REQUIRE(block.has_value());
    CHECK(block->huge_pages() == HugePages::Auto);
    CHECK(test::mapping_vmflags(block->host()).find(" hg") != std::string::npos);
}

TEST_CASE("RAM block of size 0 is refused") {
    auto block = RamBlock::create(0, RamOffset(0), HugePages::None, "empty");
    REQUIRE_FALSE(block.has_value());
    CHECK(block.error().message == "RAM block 'empty' has size 0");
}

TEST_CASE("RAM block size that is not 4 KiB aligned is refused") {
    auto block = RamBlock::create(4096 + 512, RamOffset(0), HugePages::None, "odd");
    REQUIRE_FALSE(block.has_value());
    CHECK(block.error().message == "RAM block 'odd' size 4608 bytes is not a multiple of 4 KiB");
}

TEST_CASE("hugetlbfs RAM block size that is not 2 MiB aligned is refused") {
    auto block = RamBlock::create(3 * MiB, RamOffset(0), HugePages::Hugetlbfs2M, "huge");
    REQUIRE_FALSE(block.has_value());
    CHECK(block.error().message == "RAM block 'huge' size 3 MiB is not a multiple of 2 MiB, as 2 MiB huge pages need");
}

TEST_CASE("hugetlbfs RAM block larger than the host's huge page pool is refused with a clear message") {
    // No test host reserves 1 TiB of 2 MiB pages; the reservation at creation must fail cleanly.
    auto block = RamBlock::create(1ull << 40, RamOffset(0), HugePages::Hugetlbfs2M, "huge");
    REQUIRE_FALSE(block.has_value());
    CHECK(block.error().message.find("huge pages") != std::string::npos);
}

TEST_CASE("RAM block whose RAM offset range would wrap is refused") {
    auto block = RamBlock::create(8192, RamOffset(UINT64_MAX - 4095), HugePages::None, "wrap");
    REQUIRE_FALSE(block.has_value());
    CHECK(block.error().message == "RAM block 'wrap' size 8 KiB is too large");
}

TEST_CASE("destroying RAM blocks closes their memfds and unmaps their memory") {
    size_t fds_before = test::open_fd_count();
    std::byte* host = nullptr;
    {
        auto block = RamBlock::create(MiB, RamOffset(0), HugePages::None, "gone");
        REQUIRE(block.has_value());
        host = block->host();
        CHECK(test::open_fd_count() == fds_before + 1);
    }
    CHECK(test::open_fd_count() == fds_before);
    CHECK(test::mapping_path(host).find("memfd:gone") == std::string::npos);
}

TEST_CASE("moving a RAM block transfers the fd and mapping") {
    auto block = RamBlock::create(MiB, RamOffset(0), HugePages::None, "moved");
    REQUIRE(block.has_value());
    int fd = block->fd();
    std::byte* host = block->host();
    RamBlock moved = std::move(*block);
    CHECK(moved.fd() == fd);
    CHECK(moved.host() == host);
    CHECK(block->fd() == -1);
    CHECK(block->host() == nullptr);
}

TEST_CASE("a back-end cannot shrink or grow a RAM block's memfd, so the block still reads") {
    auto block = RamBlock::create(64 * 1024, RamOffset(0), HugePages::None, "sealed");
    REQUIRE(block.has_value());
    block->host()[64 * 1024 - 1] = std::byte{7};
    int backend_fd = ::dup(block->fd());  // what SCM_RIGHTS hands a vhost-user back-end

    int shrink = ::ftruncate(backend_fd, 0);
    int shrink_errno = errno;
    int grow = ::ftruncate(backend_fd, 128 * 1024);
    int grow_errno = errno;
    int unseal = ::fcntl(backend_fd, F_ADD_SEALS, F_SEAL_WRITE);
    ::close(backend_fd);

    CHECK(shrink == -1);
    CHECK(shrink_errno == EPERM);
    CHECK(grow == -1);
    CHECK(grow_errno == EPERM);
    CHECK(unseal == -1);  // F_SEAL_SEAL: no seal can be added or removed any more
    CHECK(::fcntl(block->fd(), F_GET_SEALS) == (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL));
    CHECK(block->host()[64 * 1024 - 1] == std::byte{7});
}
