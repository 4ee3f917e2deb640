#include <doctest/doctest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "device_harness.h"
#include "devices/virtio/net.h"
#include "devices/virtio/net_features.h"
#include "devices/virtio/tap.h"

using namespace kite;
using namespace kite::test;

namespace {

constexpr MacAddress kMac{0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

// A net device on one end of a SOCK_SEQPACKET pair: the other end plays the tap.
struct Net {
    Net() {
        int fds[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
        peer = UniqueFd(fds[1]);
        device = std::make_shared<NetDevice>(UniqueFd(fds[0]), kMac, false);
        h = std::make_unique<DeviceHarness>(*device);
        REQUIRE(h->activate());
    }

    std::vector<char> frame(char fill, size_t payload) {
        std::vector<char> f(kVnetHeaderSize + payload, fill);
        std::fill(f.begin(), f.begin() + kVnetHeaderSize, 0);
        return f;
    }

    UniqueFd peer;
    std::shared_ptr<NetDevice> device;
    std::unique_ptr<DeviceHarness> h;
};

}  // namespace

TEST_CASE("net config space holds the MAC and link up") {
    Net net;
    uint8_t config[8];

    net.device->read_config(0, config);

    CHECK(config[0] == 0x52);
    CHECK(config[5] == 0x56);
    CHECK(config[6] == 1);
    CHECK((net.device->device_features() & (net::kMac | net::kStatus)) == (net::kMac | net::kStatus));
}

TEST_CASE("net transmits a chain as one frame with its header") {
    Net net;
    auto frame = net.frame('t', 60);
    net.h->memory.write(GuestAddress(0x100000), std::as_bytes(std::span(frame).first(kVnetHeaderSize)));
    net.h->memory.write(GuestAddress(0x200000), std::as_bytes(std::span(frame).subspan(kVnetHeaderSize)));
    net.h->queues[1].add_chain({{0x100000, kVnetHeaderSize}, {0x200000, 60}});

    net.h->kick(1);

    std::vector<char> got(200);
    ssize_t n = ::read(net.peer.get(), got.data(), got.size());
    got.resize(n > 0 ? size_t(n) : 0);
    CHECK(got == frame);
    CHECK(net.h->queues[1].used_idx() == 1);
}

TEST_CASE("net drops a transmit chain shorter than the header") {
    Net net;
    net.h->queues[1].add_chain({{0x100000, 4}});

    net.h->kick(1);

    char byte;
    CHECK(::read(net.peer.get(), &byte, 1) < 0);
    CHECK(net.h->queues[1].used_idx() == 1);
}

TEST_CASE("net receives a frame into a receive buffer with num_buffers set to 1") {
    Net net;
    net.h->queues[0].add_chain({{0x300000, 2048, true}});
    auto frame = net.frame('r', 100);
    REQUIRE(::write(net.peer.get(), frame.data(), frame.size()) == ssize_t(frame.size()));

    net.h->kick(0);

    std::vector<char> got(frame.size());
    net.h->memory.read(GuestAddress(0x300000), std::as_writable_bytes(std::span(got)));
    CHECK(net.h->queues[0].used_len(0) == frame.size());
    CHECK(got[10] == 1);
    CHECK(std::string(got.begin() + kVnetHeaderSize, got.end()) == std::string(100, 'r'));
    CHECK(net.h->interrupt.used == std::vector<uint16_t>{0});
}

TEST_CASE("net keeps a frame until the driver offers a receive buffer") {
    Net net;
    auto frame = net.frame('k', 50);
    REQUIRE(::write(net.peer.get(), frame.data(), frame.size()) == ssize_t(frame.size()));
    net.h->run();
    uint16_t used_before = net.h->queues[0].used_idx();
    net.h->queues[0].add_chain({{0x300000, 2048, true}});

    net.h->kick(0);

    CHECK(used_before == 0);
    CHECK(net.h->queues[0].used_idx() == 1);
    CHECK(net.h->queues[0].used_len(0) == frame.size());
}

TEST_CASE("net drops a frame larger than the receive buffer and returns the buffer empty") {
    Net net;
    net.h->queues[0].add_chain({{0x300000, 64, true}});
    auto frame = net.frame('x', 1000);
    REQUIRE(::write(net.peer.get(), frame.data(), frame.size()) == ssize_t(frame.size()));

    net.h->kick(0);

    CHECK(net.h->queues[0].used_idx() == 1);
    CHECK(net.h->queues[0].used_len(0) == 0);
}

TEST_CASE("a tap opens with a vnet header and accepts the guest offloads") {
    std::string name = "kite-test-" + std::to_string(::getpid() % 100000);

    auto tap = open_tap(name);

    REQUIRE(tap);
    CHECK(set_tap_offloads(tap->get(), net::kGuestCsum | net::kGuestTso4 | net::kGuestTso6));
}

TEST_CASE("a tap name longer than IFNAMSIZ is refused") {
    CHECK_FALSE(open_tap("kite-test-name-far-too-long"));
}
