// The device-wide bound on what SHMEM_MAP/SHMEM_UNMAP cost the VMM's address space (vhost/shm_regions.h).
#include <doctest/doctest.h>

#include <unistd.h>

#include <fstream>
#include <string>

#include "tests/unit/vhost/test_util.h"
#include "vhost/backend_channel.h"
#include "vhost/shm_regions.h"

using namespace kite;
using namespace kite::vhost;

namespace {

constexpr uint64_t kPage = 4096;

// Address-space pieces (VMAs) of this process, as the kernel counts them against vm.max_map_count.
size_t vma_count() {
    std::ifstream maps("/proc/self/maps");
    size_t n = 0;
    for (std::string line; std::getline(maps, line);) ++n;
    return n;
}

}  // namespace

TEST_CASE("a back-end mapping and unmapping at ever new offsets cannot grow Kite's VMA count without bound") {
    constexpr size_t kMax = 64;
    ShmWindowTable table(kMax);
    REQUIRE(table.add_region(0, 4096 * kPage).has_value());
    auto memfd = test::pattern_memfd(kPage, 1);
    const size_t before = vma_count();

    size_t refused = 0;
    for (uint64_t i = 0; i < 1000; ++i) {
        // Every other page, so no two ranges touch: each unmap leaves a zero-filled piece of its own.
        uint64_t offset = 2 * i * kPage;
        if (!table.map(0, offset, BorrowedFd(memfd.get()), 0, kPage, true)) {
            ++refused;
            continue;
        }
        REQUIRE(table.unmap(0, offset, kPage).has_value());
    }
    const size_t after = vma_count();

    // A map at a new range costs two pieces while it lives (the mapping and its range), one after.
    CHECK(refused == 1000 - (kMax - 1));
    CHECK(table.pieces() == kMax - 1);
    CHECK(after <= before + 2 * kMax + 2);
    // A remap of a touched range costs nothing more (DAX reuses its ranges).
    CHECK(table.map(0, 0, BorrowedFd(memfd.get()), 0, kPage, true).has_value());
    CHECK(table.unmap(0, 0, kPage).has_value());
    // clear() (reset, lost back-end) gives the budget back.
    table.clear();
    CHECK(table.pieces() == 0);
    CHECK(table.map(0, 4000 * kPage, BorrowedFd(memfd.get()), 0, kPage, true).has_value());
}

TEST_CASE("adjacent touched ranges count as one piece") {
    ShmWindowTable table(4);
    REQUIRE(table.add_region(0, 64 * kPage).has_value());
    auto memfd = test::pattern_memfd(kPage, 1);

    for (uint64_t i = 0; i < 32; ++i) {
        REQUIRE(table.map(0, i * kPage, BorrowedFd(memfd.get()), 0, kPage, false).has_value());
        REQUIRE(table.unmap(0, i * kPage, kPage).has_value());
    }

    CHECK(table.pieces() == 1);
}

TEST_CASE("a flood of failing SHMEM_MAPs leaves the VMA count flat and is counted against the bound") {
    constexpr size_t kMax = 16;
    ShmWindowTable table(kMax);
    REQUIRE(table.add_region(0, 4096 * kPage).has_value());
    auto pair = socket_pair().value();
    Connection peer(std::move(pair.second));
    BackendChannel::Options options;
    options.protocol_features = protocol_feature::kShmem | protocol_feature::kReplyAck;
    options.shm = &table;
    BackendChannel channel(std::move(pair.first), std::move(options));
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    UniqueFd read_end(pipe_fds[0]), write_end(pipe_fds[1]);  // a pipe cannot be mmapped: every map fails
    const size_t before = vma_count();

    for (uint64_t i = 0; i < 500; ++i) {
        VhostUserMMap m{};
        m.shm_offset = 2 * i * kPage;
        m.len = kPage;
        int fds[] = {read_end.get()};
        REQUIRE(peer.send(static_cast<uint32_t>(BackendReq::ShmemMap), kVersion | kFlagNeedReply, bytes_of(m), fds)
                    .has_value());
        channel.serve_pending();
        auto reply = peer.receive(Millis(1000));
        REQUIRE(reply.has_value());
        CHECK(validate_backend_reply(BackendReq::ShmemMap, *reply).value() != 0);
    }

    CHECK(vma_count() <= before + 2);
    CHECK(table.pieces() == kMax - 1);  // then every map at a new range is refused before it reaches mmap
    CHECK(channel.refused() == 500);
    CHECK_FALSE(channel.closed());
}

TEST_CASE("a device has at most 16 shared memory regions") {
    ShmWindowTable table;
    for (uint8_t id = 0; id < kMaxShmRegionsPerDevice; ++id) REQUIRE(table.add_region(id, kPage).has_value());

    CHECK_FALSE(table.add_region(200, kPage).has_value());
}
