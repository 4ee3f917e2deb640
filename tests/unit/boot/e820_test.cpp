#include <doctest/doctest.h>

#include <vector>

#include "tests/unit/boot/test_images.h"
#include "vmm/arch/x86_64/boot/e820.h"

using namespace kite;
using namespace kite::boot;
using kite::boot::test::MiB;

TEST_CASE("e820 for RAM from 0 splits off the legacy BIOS area as reserved") {
    std::vector<AddressRange> ram{{GuestAddress(0), 64 * MiB}};

    auto map = build_e820(ram, {});

    REQUIRE(map.has_value());
    CHECK(*map == std::vector<E820Entry>{{0, 0x9fc00, kE820Ram},
                                         {0x9fc00, 0x100000 - 0x9fc00, kE820Reserved},
                                         {0x100000, 63 * MiB, kE820Ram}});
}

TEST_CASE("e820 leaves the 32-bit MMIO hole out of the map") {
    std::vector<AddressRange> ram{{GuestAddress(0), 3072 * MiB}, {GuestAddress(4096 * MiB), 1024 * MiB}};

    auto map = build_e820(ram, {});

    REQUIRE(map.has_value());
    REQUIRE(map->size() == 4);
    CHECK((*map)[2] == E820Entry{0x100000, 3072 * MiB - 0x100000, kE820Ram});
    CHECK((*map)[3] == E820Entry{4096 * MiB, 1024 * MiB, kE820Ram});
}

TEST_CASE("e820 reserved range inside RAM cuts it in two") {
    std::vector<AddressRange> ram{{GuestAddress(0), 64 * MiB}};
    std::vector<AddressRange> reserved{{GuestAddress(32 * MiB), 1 * MiB}};

    auto map = build_e820(ram, reserved);

    REQUIRE(map.has_value());
    REQUIRE(map->size() == 5);
    CHECK((*map)[2] == E820Entry{0x100000, 31 * MiB, kE820Ram});
    CHECK((*map)[3] == E820Entry{32 * MiB, 1 * MiB, kE820Reserved});
    CHECK((*map)[4] == E820Entry{33 * MiB, 31 * MiB, kE820Ram});
}

TEST_CASE("e820 merges adjacent RAM ranges into one entry") {
    std::vector<AddressRange> ram{{GuestAddress(0), 16 * MiB}, {GuestAddress(16 * MiB), 16 * MiB}};

    auto map = build_e820(ram, {});

    REQUIRE(map.has_value());
    CHECK(map->back() == E820Entry{0x100000, 31 * MiB, kE820Ram});
}

TEST_CASE("e820 rejects a range that wraps around 2^64") {
    std::vector<AddressRange> ram{{GuestAddress(0), 64 * MiB}, {GuestAddress(UINT64_MAX - 10), 100}};

    auto map = build_e820(ram, {});

    REQUIRE_FALSE(map.has_value());
    CHECK(map.error().message.find("wraps") != std::string::npos);
}

TEST_CASE("e820 with more entries than the zero page holds is an error") {
    std::vector<AddressRange> ram;
    for (uint64_t i = 0; i < 130; ++i) ram.emplace_back(GuestAddress((i + 1) * 2 * MiB), 1 * MiB);

    auto map = build_e820(ram, {});

    REQUIRE_FALSE(map.has_value());
    CHECK(map.error().message.find("at most 128") != std::string::npos);
}
