#include <doctest/doctest.h>

#include <string>

#include "device_harness.h"
#include "devices/virtio/console.h"

using namespace kite;
using namespace kite::test;

namespace {
std::span<const std::byte> bytes_of(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }
}  // namespace

TEST_CASE("console output reaches the sink") {
    std::string output;
    ConsoleDevice console([&](std::span<const std::byte> b) { output.append(reinterpret_cast<const char*>(b.data()), b.size()); });
    DeviceHarness h(console);
    REQUIRE(h.activate());
    h.memory.write(GuestAddress(0x100000), bytes_of("hello "));
    h.memory.write(GuestAddress(0x200000), bytes_of("guest"));
    h.queues[1].add_chain({{0x100000, 6}, {0x200000, 5}});

    h.kick(1);

    CHECK(output == "hello guest");
    CHECK(h.queues[1].used_idx() == 1);
    CHECK(h.interrupt.used == std::vector<uint16_t>{1});
}

TEST_CASE("console input waits for a receive buffer and is then delivered") {
    ConsoleDevice console([](std::span<const std::byte>) {});
    DeviceHarness h(console);
    REQUIRE(h.activate());
    console.enqueue_input(bytes_of("ls\n"));
    h.queues[0].add_chain({{0x100000, 64, true}});

    h.kick(0);

    std::string got(3, '\0');
    h.memory.read(GuestAddress(0x100000), std::as_writable_bytes(std::span(got.data(), 3)));
    CHECK(got == "ls\n");
    CHECK(h.queues[0].used_len(0) == 3);
}

TEST_CASE("console input larger than a receive buffer is split across buffers") {
    ConsoleDevice console([](std::span<const std::byte>) {});
    DeviceHarness h(console);
    REQUIRE(h.activate());
    h.queues[0].add_chain({{0x100000, 4, true}});
    h.queues[0].add_chain({{0x200000, 4, true}});

    console.enqueue_input(bytes_of("abcdef"));

    CHECK(h.queues[0].used_idx() == 2);
    CHECK(h.queues[0].used_len(0) == 4);
    CHECK(h.queues[0].used_len(1) == 2);
}

TEST_CASE("console input beyond the pending limit is dropped") {
    ConsoleDevice console([](std::span<const std::byte>) {});
    std::string big(ConsoleDevice::kMaxPendingInput + 10, 'x');
    console.enqueue_input(bytes_of(big));
    DeviceHarness h(console);
    h.queues[0].add_chain({{0x100000, 0x20000, true}});

    REQUIRE(h.activate());

    CHECK(h.queues[0].used_len(0) == ConsoleDevice::kMaxPendingInput);
}

TEST_CASE("a pass stops after a queue's worth of chains and kicks the queue again") {
    // A receive buffer over avail.idx: each delivery makes the same chain available again.
    ConsoleDevice console([](std::span<const std::byte>) {});
    DeviceHarness h(console);
    REQUIRE(h.activate());
    h.queues[0].set_desc(0, h.queues[0].avail_addr() + 2, 2, kDescWrite, 0);
    h.queues[0].publish(0);
    std::vector<uint16_t> next_indexes;
    for (uint16_t i = 2; i < 100; ++i) next_indexes.push_back(i);

    console.enqueue_input(std::as_bytes(std::span(next_indexes)));

    uint64_t kicks = 0;
    CHECK(::read(h.kicks[0].get(), &kicks, sizeof kicks) == sizeof kicks);
    CHECK(h.queues[0].used_idx() == 16);
}
