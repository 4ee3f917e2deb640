#include <doctest/doctest.h>

#include <array>
#include <cstring>

#include "memory/guest_ram.h"
#include "proc_self.h"

using namespace kite;

namespace {
constexpr uint64_t MiB = 1 << 20;
constexpr uint64_t GiB = 1ull << 30;
}  // namespace

TEST_CASE("blocks get consecutive RAM offsets and ram_size is their sum") {
    GuestRam ram;
    REQUIRE(ram.add_block(2 * MiB, HugePages::None) == 0u);
    REQUIRE(ram.add_block(4 * MiB, HugePages::None) == 1u);
    CHECK(ram.block(0).ram_offset() == RamOffset(0));
    CHECK(ram.block(1).ram_offset() == RamOffset(2 * MiB));
    CHECK(ram.ram_size() == 6 * MiB);
    CHECK(ram.block_count() == 2u);
}

TEST_CASE("a failed add_block leaves the blocks and ram_size unchanged") {
    GuestRam ram;
    REQUIRE(ram.add_block(2 * MiB, HugePages::None).has_value());
    auto bad = ram.add_block(100, HugePages::None);
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().message == "RAM block 'kite-ram1' size 100 bytes is not a multiple of 4 KiB");
    CHECK(ram.block_count() == 1u);
    CHECK(ram.ram_size() == 2 * MiB);
}

TEST_CASE("regions lists mapped blocks in guest-physical order with their host view and fd") {
    GuestRam ram;
    REQUIRE(ram.add_block(2 * MiB, HugePages::None).has_value());
    REQUIRE(ram.add_block(4 * MiB, HugePages::None).has_value());
    REQUIRE(ram.map_block(0, GuestAddress(4 * GiB)).has_value());
    REQUIRE(ram.map_block(1, GuestAddress(0)).has_value());
    auto regions = ram.regions();
    REQUIRE(regions.size() == 2u);
    CHECK(regions[0].block == 1u);
    CHECK(regions[0].gpa == GuestAddress(0));
    CHECK(regions[0].size == 4 * MiB);
    CHECK(regions[0].host == ram.block(1).host());
    CHECK(regions[0].fd == ram.block(1).fd());
    CHECK(regions[0].ram_offset == RamOffset(2 * MiB));
    CHECK(regions[1].block == 0u);
    CHECK(regions[1].gpa == GuestAddress(4 * GiB));
}

TEST_CASE("guest writes land in the block's memory at the matching offset") {
    GuestRam ram;
    REQUIRE(ram.add_block(2 * MiB, HugePages::None).has_value());
    REQUIRE(ram.map_block(0, GuestAddress(16 * MiB)).has_value());
    REQUIRE(ram.write_obj<uint32_t>(GuestAddress(16 * MiB + 0x100), 0xdeadbeefu));
    uint32_t value = 0;
    std::memcpy(&value, ram.block(0).host() + 0x100, sizeof value);
    CHECK(value == 0xdeadbeefu);
}

TEST_CASE("a read across two adjacent mapped blocks returns bytes from both") {
    GuestRam ram;
    REQUIRE(ram.add_block(MiB, HugePages::None).has_value());
    REQUIRE(ram.add_block(MiB, HugePages::None).has_value());
    REQUIRE(ram.map_block(0, GuestAddress(0)).has_value());
    REQUIRE(ram.map_block(1, GuestAddress(MiB)).has_value());
    REQUIRE(ram.write_obj<uint64_t>(GuestAddress(MiB - 4), 0x1122334455667788ull));
    CHECK(ram.read_obj<uint64_t>(GuestAddress(MiB - 4)) == 0x1122334455667788ull);
    CHECK(ram.contiguous_from(GuestAddress(MiB - 4)) == 4u);
    CHECK_FALSE(ram.span(GuestAddress(MiB - 4), 8).has_value());
}

TEST_CASE("span and contiguous_from refuse addresses outside mapped RAM without wrapping") {
    GuestRam ram;
    REQUIRE(ram.add_block(MiB, HugePages::None).has_value());
    REQUIRE(ram.map_block(0, GuestAddress(MiB)).has_value());
    CHECK_FALSE(ram.span(GuestAddress(0), 1).has_value());
    CHECK_FALSE(ram.span(GuestAddress(2 * MiB), 1).has_value());
    CHECK_FALSE(ram.span(GuestAddress(MiB + 16), UINT64_MAX).has_value());
    CHECK(ram.span(GuestAddress(2 * MiB), 0).has_value());
    CHECK(ram.contiguous_from(GuestAddress(MiB - 1)) == 0u);
    CHECK(ram.contiguous_from(GuestAddress(2 * MiB)) == 0u);
    CHECK(ram.contiguous_from(GuestAddress(MiB + 16)) == MiB - 16);
}

TEST_CASE("mapping a block over another mapped block is refused") {
    GuestRam ram;
    REQUIRE(ram.add_block(2 * MiB, HugePages::None).has_value());
    REQUIRE(ram.add_block(2 * MiB, HugePages::None).has_value());
    REQUIRE(ram.map_block(0, GuestAddress(4 * MiB)).has_value());
    auto below = ram.map_block(1, GuestAddress(3 * MiB));
    REQUIRE_FALSE(below.has_value());
    CHECK(below.error().message == "RAM block 1 at [0x300000, +2 MiB) overlaps RAM block 0 at [0x400000, +2 MiB)");
    CHECK_FALSE(ram.map_block(1, GuestAddress(5 * MiB)).has_value());
    CHECK(ram.map_block(1, GuestAddress(6 * MiB)).has_value());
}

TEST_CASE("mapping a block that wraps the guest address space is refused") {
    GuestRam ram;
    REQUIRE(ram.add_block(2 * MiB, HugePages::None).has_value());
    auto wrap = ram.map_block(0, GuestAddress(UINT64_MAX - MiB + 1));
    REQUIRE_FALSE(wrap.has_value());
    CHECK(wrap.error().message == "RAM block 0 at [0xfffffffffff00000, +2 MiB) wraps past the end of the guest address space");
}

TEST_CASE("a block ending exactly at the top of the address space maps and is readable") {
    GuestRam ram;
    REQUIRE(ram.add_block(2 * MiB, HugePages::None).has_value());
    REQUIRE(ram.map_block(0, GuestAddress(UINT64_MAX - 2 * MiB + 1)).has_value());
    CHECK(ram.contiguous_from(GuestAddress(UINT64_MAX)) == 1u);
    CHECK(ram.span(GuestAddress(UINT64_MAX), 1).has_value());
    CHECK_FALSE(ram.span(GuestAddress(UINT64_MAX), 2).has_value());
}

TEST_CASE("mapping an unknown, already mapped or unaligned block is refused") {
    GuestRam ram;
    REQUIRE(ram.add_block(MiB, HugePages::None).has_value());
    REQUIRE(ram.map_block(0, GuestAddress(0)).has_value());
    CHECK(ram.map_block(1, GuestAddress(8 * MiB)).error().message == "RAM block 1 does not exist");
    CHECK(ram.map_block(0, GuestAddress(8 * MiB)).error().message == "RAM block 0 is already mapped at 0");
    REQUIRE(ram.add_block(MiB, HugePages::None).has_value());
    CHECK(ram.map_block(1, GuestAddress(8 * MiB + 512)).error().message ==
          "guest address 0x800200 for RAM block 1 is not 4 KiB aligned");
}

TEST_CASE("an unmapped block keeps its memory reachable by RAM offset but not by guest address") {
    GuestRam ram;
    REQUIRE(ram.add_block(MiB, HugePages::None).has_value());
    REQUIRE(ram.add_block(MiB, HugePages::None).has_value());
    REQUIRE(ram.map_block(1, GuestAddress(0)).has_value());
    REQUIRE(ram.write_obj<uint8_t>(GuestAddress(10), 0x5a));
    REQUIRE(ram.unmap_block(1).has_value());
    CHECK_FALSE(ram.contains(GuestAddress(10), 1));
    CHECK(ram.regions().empty());
    auto bytes = ram.ram_span(RamOffset(MiB + 10), 1);
    REQUIRE(bytes.has_value());
    CHECK((*bytes)[0] == std::byte{0x5a});
    CHECK(ram.block(1).ram_offset() == RamOffset(MiB));
}

TEST_CASE("unmapping an unknown or unmapped block is refused") {
    GuestRam ram;
    REQUIRE(ram.add_block(MiB, HugePages::None).has_value());
    CHECK(ram.unmap_block(0).error().message == "RAM block 0 is not mapped");
    CHECK(ram.unmap_block(3).error().message == "RAM block 3 does not exist");
}

TEST_CASE("an unmapped block can be mapped again elsewhere") {
    GuestRam ram;
    REQUIRE(ram.add_block(MiB, HugePages::None).has_value());
    REQUIRE(ram.map_block(0, GuestAddress(0)).has_value());
    REQUIRE(ram.unmap_block(0).has_value());
    REQUIRE(ram.map_block(0, GuestAddress(64 * MiB)).has_value());
    CHECK(ram.gpa_of(RamOffset(0)) == GuestAddress(64 * MiB));
}

TEST_CASE("ram_span stays inside one block and refuses ranges past the end of RAM") {
    GuestRam ram;
    REQUIRE(ram.add_block(MiB, HugePages::None).has_value());
    REQUIRE(ram.add_block(MiB, HugePages::None).has_value());
    CHECK(ram.ram_span(RamOffset(MiB - 8), 8).has_value());
    CHECK_FALSE(ram.ram_span(RamOffset(MiB - 8), 16).has_value());
    CHECK_FALSE(ram.ram_span(RamOffset(2 * MiB), 1).has_value());
    CHECK(ram.ram_span(RamOffset(2 * MiB), 0).has_value());
    CHECK_FALSE(ram.ram_span(RamOffset(8), UINT64_MAX).has_value());
}

TEST_CASE("gpa_of and ram_offset_of translate between mapped RAM and guest addresses") {
    GuestRam ram;
    REQUIRE(ram.add_block(MiB, HugePages::None).has_value());
    REQUIRE(ram.add_block(MiB, HugePages::None).has_value());
    REQUIRE(ram.map_block(1, GuestAddress(4 * GiB)).has_value());
    CHECK(ram.gpa_of(RamOffset(MiB + 0x123)) == GuestAddress(4 * GiB + 0x123));
    CHECK(ram.ram_offset_of(GuestAddress(4 * GiB + 0x123)) == RamOffset(MiB + 0x123));
    CHECK_FALSE(ram.gpa_of(RamOffset(0x123)).has_value());
    CHECK_FALSE(ram.gpa_of(RamOffset(2 * MiB)).has_value());
    CHECK_FALSE(ram.ram_offset_of(GuestAddress(4 * GiB + MiB)).has_value());
}

TEST_CASE("destroying GuestRam closes every block's memfd") {
    size_t fds_before = test::open_fd_count();
    {
        GuestRam ram;
        REQUIRE(ram.add_block(MiB, HugePages::None).has_value());
        REQUIRE(ram.add_block(MiB, HugePages::None).has_value());
        CHECK(test::open_fd_count() == fds_before + 2);
    }
    CHECK(test::open_fd_count() == fds_before);
}
