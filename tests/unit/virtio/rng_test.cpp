#include <doctest/doctest.h>

#include <algorithm>
#include <vector>

#include "device_harness.h"
#include "devices/virtio/rng.h"

using namespace kite;
using namespace kite::test;

TEST_CASE("rng fills a writable buffer and reports its length as used") {
    RngDevice rng;
    DeviceHarness h(rng);
    REQUIRE(h.activate());
    h.queues[0].add_chain({{0x100000, 256, true}});

    h.kick(0);

    std::vector<std::byte> out(256);
    h.memory.read(GuestAddress(0x100000), out);
    CHECK(h.queues[0].used_idx() == 1);
    CHECK(h.queues[0].used_len(0) == 256);
    CHECK(std::count(out.begin(), out.end(), std::byte{0}) < 32);
    CHECK(h.interrupt.used == std::vector<uint16_t>{0});
}

TEST_CASE("rng completes a chain with a buffer outside RAM with length 0") {
    RngDevice rng;
    DeviceHarness h(rng);
    REQUIRE(h.activate());
    h.queues[0].add_chain({{(16 << 20) - 8, 64, true}});

    h.kick(0);

    CHECK(h.queues[0].used_idx() == 1);
    CHECK(h.queues[0].used_len(0) == 0);
}

TEST_CASE("rng serves buffers made available before activation") {
    RngDevice rng;
    DeviceHarness h(rng);
    h.queues[0].add_chain({{0x100000, 16, true}});

    REQUIRE(h.activate());

    CHECK(h.queues[0].used_idx() == 1);
}

TEST_CASE("rng flags DEVICE_NEEDS_RESET when the avail index runs away") {
    RngDevice rng;
    DeviceHarness h(rng);
    REQUIRE(h.activate());
    h.queues[0].set_avail_idx(100);

    h.kick(0);

    CHECK(h.interrupt.resets_needed == 1);
}

TEST_CASE("rng stops serving after reset") {
    RngDevice rng;
    DeviceHarness h(rng);
    REQUIRE(h.activate());
    rng.reset();
    h.queues[0].add_chain({{0x100000, 16, true}});

    h.kick(0);

    CHECK(h.queues[0].used_idx() == 0);
}
