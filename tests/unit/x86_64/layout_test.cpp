#include <doctest/doctest.h>

#include "vmm/arch/x86_64/layout.h"

using namespace kite;

namespace {
constexpr uint64_t MiB = 1 << 20;
constexpr uint64_t GiB = 1ull << 30;
}  // namespace

TEST_CASE("RAM below the MMIO hole is one range at 0 and windows start at 4 GiB") {
    auto layout = x86_layout(512 * MiB);
    REQUIRE(layout.has_value());
    REQUIRE(layout->ram.size() == 1u);
    CHECK(layout->ram[0].first == GuestAddress(0));
    CHECK(layout->ram[0].second == 512 * MiB);
    CHECK(layout->shm_base == GuestAddress(4 * GiB));
    CHECK(layout->shm_limit == GuestAddress(kGuestPhysLimit));
}

TEST_CASE("RAM of exactly 3 GiB fills the space below the hole and nothing above it") {
    auto layout = x86_layout(3 * GiB);
    REQUIRE(layout.has_value());
    REQUIRE(layout->ram.size() == 1u);
    CHECK(layout->ram[0].second == 3 * GiB);
    CHECK(layout->shm_base == GuestAddress(4 * GiB));
}

TEST_CASE("RAM above 3 GiB continues at 4 GiB and windows start at the next GiB above it") {
    auto layout = x86_layout(5 * GiB + 4096);
    REQUIRE(layout.has_value());
    REQUIRE(layout->ram.size() == 2u);
    CHECK(layout->ram[0].second == 3 * GiB);
    CHECK(layout->ram[1].first == GuestAddress(4 * GiB));
    CHECK(layout->ram[1].second == 2 * GiB + 4096);
    CHECK(layout->shm_base == GuestAddress(7 * GiB));
}

TEST_CASE("RAM ending on a GiB boundary puts the windows right after it") {
    auto layout = x86_layout(6 * GiB);
    REQUIRE(layout.has_value());
    CHECK(layout->shm_base == GuestAddress(7 * GiB));
}

TEST_CASE("RAM below 16 MiB is refused") {
    auto layout = x86_layout(8 * MiB);
    REQUIRE_FALSE(layout.has_value());
    CHECK(layout.error().message == "guest RAM size 8 MiB is below the minimum of 16 MiB");
}

TEST_CASE("RAM that is not 4 KiB aligned is refused") {
    auto layout = x86_layout(32 * MiB + 100);
    REQUIRE_FALSE(layout.has_value());
    CHECK(layout.error().message == "guest RAM size 33554532 bytes is not a multiple of 4 KiB");
}

TEST_CASE("RAM too large for the guest-physical limit is refused") {
    auto layout = x86_layout(kGuestPhysLimit);
    REQUIRE_FALSE(layout.has_value());
    CHECK(layout.error().message == "guest RAM size 1 TiB does not fit below the 1 TiB guest-physical limit");
    CHECK_FALSE(x86_layout(UINT64_MAX - 4095).has_value());
}

TEST_CASE("shared-memory windows are handed out in order on 2 MiB boundaries") {
    ShmAllocator shm(GuestAddress(4 * GiB), GuestAddress(8 * GiB));
    CHECK(shm.allocate(4096) == GuestAddress(4 * GiB));
    CHECK(shm.allocate(3 * MiB) == GuestAddress(4 * GiB + 2 * MiB));
    CHECK(shm.allocate(GiB) == GuestAddress(4 * GiB + 6 * MiB));
}

TEST_CASE("a shared-memory window that does not fit below the limit is refused") {
    ShmAllocator shm(GuestAddress(4 * GiB), GuestAddress(5 * GiB));
    REQUIRE(shm.allocate(GiB - 2 * MiB).has_value());
    auto full = shm.allocate(2 * MiB + 4096);
    REQUIRE_FALSE(full.has_value());
    CHECK(full.error().message ==
          "no guest-physical space left for a 2052 KiB shared-memory window (space ends at 0x140000000)");
    CHECK(shm.allocate(2 * MiB) == GuestAddress(5 * GiB - 2 * MiB));
    CHECK_FALSE(shm.allocate(4096).has_value());
}

TEST_CASE("a shared-memory window of absurd size is refused without wrapping") {
    auto layout = x86_layout(GiB);
    REQUIRE(layout.has_value());
    ShmAllocator shm(*layout);
    CHECK_FALSE(shm.allocate(UINT64_MAX - 4095).has_value());
    CHECK(shm.allocate(4096) == GuestAddress(4 * GiB));
}

TEST_CASE("shared-memory windows of size 0 or not 4 KiB aligned are refused") {
    ShmAllocator shm(GuestAddress(4 * GiB), GuestAddress(8 * GiB));
    CHECK(shm.allocate(0).error().message == "shared-memory window of size 0");
    CHECK(shm.allocate(4097).error().message == "shared-memory window size 4097 bytes is not a multiple of 4 KiB");
}

TEST_CASE("virtio-mmio transports sit 4 KiB apart from 0xd0000000 on IOAPIC pins 5 to 23") {
    CHECK(virtio_mmio_base(0) == GuestAddress(0xD000'0000));
    CHECK(virtio_mmio_base(3) == GuestAddress(0xD000'3000));
    CHECK(virtio_mmio_irq(0) == 5u);
    CHECK(virtio_mmio_irq(18) == 23u);
    CHECK_FALSE(virtio_mmio_irq(19).has_value());
    CHECK_FALSE(virtio_mmio_irq(UINT32_MAX).has_value());
}
