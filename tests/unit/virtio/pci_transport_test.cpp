// The virtio-pci transport against a recording hypervisor: config space and capabilities, the common
// configuration, MSI-X routing and irqfd binding (masking keeps events pending), notifications following
// BAR 0, reset.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <optional>
#include <tuple>

#include "base/asio_loop.h"
#include "base/event_fd.h"
#include "devices/virtio/pci_transport.h"
#include "devices/virtio/spec.h"
#include "fake_queue.h"
#include "pci_driver.h"

using namespace kite;
using namespace kite::test;

namespace {

constexpr uint64_t kBar = 0xc000'0000;
constexpr uint32_t kGsi = 40;
using T = VirtioPciTransport;

class Device : public VirtioDevice {
public:
    uint32_t device_id() const override { return id; }
    uint64_t device_features() const override { return virtio::kCommonFeatures | 1; }
    std::vector<uint16_t> queue_max_sizes() const override { return {64, 16}; }
    void read_config(uint64_t offset, std::span<uint8_t> data) override {
        for (size_t i = 0; i < data.size(); ++i) data[i] = uint8_t(0xa0 + offset + i);
    }
    void write_config(uint64_t offset, std::span<const uint8_t> data) override { config_written = offset + data.size(); }
    Result<void> activate(ActivateContext ctx) override {
        ++activations;
        queues = ctx.queues;
        kicks.clear();
        calls.clear();
        for (BorrowedFd fd : ctx.kick_fds) kicks.push_back(fd.get());
        for (BorrowedFd fd : ctx.call_fds) calls.push_back(fd.get());
        irq_fd = ctx.irq_fd.get();
        return {};
    }
    void reset() override { ++resets; }
    std::vector<ShmRegion> shm_regions() const override { return shm; }

    int activations = 0, resets = 0, irq_fd = 0;
    uint64_t config_written = 0;
    std::vector<QueueConfig> queues;
    std::vector<int> kicks, calls;
    std::vector<ShmRegion> shm;
    uint32_t id = 2;
};

struct Bench {
    HeapMemory mem{1 << 20};
    asio::io_context io;
    RecordingHost host;
    std::shared_ptr<Device> device = std::make_shared<Device>();
    std::shared_ptr<T> t = *T::create(device, mem, io, host, kBar, kGsi);
};

struct Fixture : Bench, PciDriver {
    Fixture() : PciDriver(*t) {}

    void run() {
        io.restart();
        io.poll();
    }
};

}  // namespace

TEST_CASE("virtio-pci: identity, BAR 0 and the capabilities point into it") {
    Fixture f;
    CHECK(f.cfg(0x00, 2) == 0x1af4);
    CHECK(f.cfg(0x02, 2) == 0x1042);  // 0x1040 + block
    CHECK(f.cfg(0x08, 1) == 1);       // revision 1: modern only
    CHECK(f.cfg(0x2c, 2) == 0x1af4);
    CHECK(f.cfg(0x2e, 2) == 0x1042);
    CHECK(f.cfg(0x3d, 1) == 0);  // no INTx pin
    CHECK(f.cfg(0x10) == kBar);
    struct Want {
        uint8_t type;
        uint32_t offset, min_length;
    };
    for (Want w : {Want{1, T::kCommonOffset, 0x38}, Want{2, T::kNotifyOffset, 8}, Want{3, T::kIsrOffset, 1},
                   Want{4, T::kDeviceConfigOffset, 0x100}}) {
        CAPTURE(w.type);
        uint16_t at = f.find_cap(0x09, w.type);
        REQUIRE(at != 0);
        CHECK(f.cfg(at + 4, 1) == 0);  // BAR 0
        CHECK(f.cfg(at + 8) == w.offset);
        CHECK(f.cfg(at + 12) >= w.min_length);
        if (w.type == 2) CHECK(f.cfg(at + 16) == T::kNotifyMultiplier);
    }
    uint16_t msix = f.find_cap(0x11);
    REQUIRE(msix != 0);
    CHECK((f.cfg(msix + 2, 2) & 0x7ff) == 2);  // three vectors: config and two queues
    CHECK(f.cfg(msix + 4) == T::kMsixTableOffset);
    CHECK(f.cfg(msix + 8) == T::kMsixPbaOffset);
}

TEST_CASE("virtio-pci: BAR 0 sizes as 32 KiB and decodes only with Memory Space on") {
    Fixture f;
    CHECK_FALSE(f.t->bar_address(0));
    f.enable_memory();
    CHECK(f.t->bar_address(0) == kBar);
    f.set_cfg(0x04, 2, 0);
    f.set_cfg(0x10, 4, 0xffffffff);
    CHECK(f.cfg(0x10) == 0xffff8000);
    CHECK_FALSE(f.t->bar_address(0));
    f.set_cfg(0x10, 4, kBar);
    f.enable_memory();
    CHECK(f.t->bar_address(0) == kBar);
}

TEST_CASE("virtio-pci: notification ioeventfds are bound while BAR 0 decodes and follow it") {
    Fixture f;
    CHECK(f.host.ioeventfds.empty());
    f.enable_memory();
    REQUIRE(f.host.ioeventfds.size() == 2);
    CHECK(f.host.ioeventfds[f.t->kick_fd(0)] == std::tuple(kBar + T::kNotifyOffset, 0u, std::optional<uint64_t>()));
    CHECK(f.host.ioeventfds[f.t->kick_fd(1)] == std::tuple(kBar + T::kNotifyOffset + 4, 0u, std::optional<uint64_t>()));
    f.set_cfg(0x10, 4, kBar + 0x10000);  // the guest moves the BAR while it decodes
    CHECK(f.host.ioeventfds[f.t->kick_fd(1)] == std::tuple(kBar + 0x10000 + T::kNotifyOffset + 4, 0u, std::optional<uint64_t>()));
    f.set_cfg(0x04, 2, 0);
    CHECK(f.host.ioeventfds.empty());
}

TEST_CASE("virtio-pci: a notification that reaches the transport is forwarded to the queue's kick fd") {
    Fixture f;
    f.set_bar(T::kNotifyOffset + 4, 4, 1);
    CHECK(readable_count(f.t->kick_fd(1)));
    CHECK_FALSE(readable_count(f.t->kick_fd(0)));
}

TEST_CASE("virtio-pci: common configuration, feature negotiation and activation") {
    Fixture f;
    CHECK(f.bar(0x12, 2) == 2);  // num_queues
    f.set_bar(0x00, 4, 1);
    CHECK(f.bar(0x04, 4) == 1);  // VERSION_1 is bit 32
    f.set_bar(0x16, 2, 1);
    CHECK(f.bar(0x18, 2) == 16);  // queue_size starts at the maximum
    CHECK(f.bar(0x1e, 2) == 1);   // queue_notify_off
    f.negotiate(virtio::kFeatureVersion1 | 1);
    CHECK((f.status() & virtio::kStatusFeaturesOk) != 0);
    FakeQueue q0(f.mem, 64, 0x1000), q1(f.mem, 16, 0x8000);
    f.setup_queue(0, q0.config());
    f.setup_queue(1, q1.config());
    f.set_bar(0x16, 2, 0);
    CHECK(f.bar(0x1c, 2) == 1);
    CHECK(f.bar(0x20, 8) == q0.config().desc.value());
    f.status(f.status() | virtio::kStatusDriverOk);
    CHECK(f.device->activations == 0);
    f.run();
    REQUIRE(f.device->activations == 1);
    CHECK(f.device->queues[1].size == 16);
    CHECK(f.device->queues[1].used == q1.config().used);
    CHECK(f.device->irq_fd == -1);
    CHECK(f.device->calls == std::vector<int>{f.t->call_fd(0), f.t->call_fd(1)});
    CHECK(f.device->kicks == std::vector<int>{f.t->kick_fd(0), f.t->kick_fd(1)});
    // Queue fields no longer change once the device runs.
    f.set_bar(0x18, 2, 8);
    CHECK(f.bar(0x18, 2) == 64);
}

TEST_CASE("virtio-pci: features the device did not offer, or without VERSION_1, are refused") {
    Fixture f;
    f.negotiate(virtio::kFeatureVersion1 | 4);
    CHECK((f.status() & virtio::kStatusFeaturesOk) == 0);
    Fixture g;
    g.negotiate(1);
    CHECK((g.status() & virtio::kStatusFeaturesOk) == 0);
}

TEST_CASE("virtio-pci: a queue outside guest RAM is refused and DRIVER_OK does not stick") {
    Fixture f;
    f.negotiate(virtio::kFeatureVersion1);
    f.setup_queue(0, QueueConfig{64, false, GuestAddress(0x1000'0000), GuestAddress(0x1000'1000), GuestAddress(0x1000'2000)});
    CHECK(f.bar(0x1c, 2) == 0);
    CHECK((f.status() & virtio::kStatusDeviceNeedsReset) != 0);
    f.status(f.status() | virtio::kStatusDriverOk);
    CHECK((f.status() & virtio::kStatusDriverOk) == 0);
    f.run();
    CHECK(f.device->activations == 0);
}

TEST_CASE("virtio-pci: an MSI-X vector is routed and its eventfds bound only while deliverable") {
    Fixture f;
    f.set_bar(0x16, 2, 0);
    f.set_bar(0x1a, 2, 1);  // queue 0 -> vector 1
    CHECK(f.bar(0x1a, 2) == 1);
    f.set_bar(0x10, 2, 0);  // config -> vector 0
    f.program_vector(1, 0xfee01000, 0x4041, false);
    CHECK(f.host.irqfds.empty());  // MSI-X still disabled
    f.enable_msix();
    CHECK(f.host.routes[kGsi + 1] == std::pair<uint64_t, uint32_t>(0xfee01000, 0x4041));
    CHECK(f.host.irqfds[f.t->call_fd(0)] == kGsi + 1);
    CHECK(f.host.irqfds.count(f.t->config_fd()) == 0);  // vector 0 is still masked
    f.program_vector(0, 0xfee00000, 0x4030, false);
    CHECK(f.host.irqfds[f.t->config_fd()] == kGsi);
    // The guest moves vector 1 (masking around the write, as Linux does).
    f.set_bar(T::kMsixTableOffset + 16 + 12, 4, 1);
    CHECK(f.host.irqfds.count(f.t->call_fd(0)) == 0);
    f.set_bar(T::kMsixTableOffset + 16 + 8, 4, 0x4042);
    f.set_bar(T::kMsixTableOffset + 16 + 12, 4, 0);
    CHECK(f.host.routes[kGsi + 1].second == 0x4042);
    CHECK(f.host.irqfds[f.t->call_fd(0)] == kGsi + 1);
    CHECK(f.t->describe().find("queue 0 vector 1 -> GSI 41") != std::string::npos);
    // The function mask takes every vector away.
    uint16_t cap = f.find_cap(0x11);
    f.set_cfg(cap + 2, 2, 0xc000);
    CHECK(f.host.irqfds.empty());
}

TEST_CASE("virtio-pci: a vector the function does not have reads back as NO_VECTOR") {
    Fixture f;
    f.set_bar(0x10, 2, 3);
    CHECK(f.bar(0x10, 2) == T::kNoVector);
    f.set_bar(0x16, 2, 1);
    f.set_bar(0x1a, 2, 7);
    CHECK(f.bar(0x1a, 2) == T::kNoVector);
}

TEST_CASE("virtio-pci: an interrupt raised while its vector is masked is pending, and kept for the unmask") {
    Fixture f;
    f.set_bar(0x16, 2, 1);
    f.set_bar(0x1a, 2, 2);
    f.enable_msix();
    f.program_vector(2, 0xfee00000, 0x4050, true);
    CHECK(f.bar(T::kMsixPbaOffset, 8) == 0);
    f.t->signal_used_queue(1);
    CHECK(f.bar(T::kMsixPbaOffset, 8) == 4);
    f.set_bar(T::kMsixTableOffset + 32 + 12, 4, 0);
    CHECK(f.host.irqfds[f.t->call_fd(1)] == kGsi + 2);
    // Bound now: KVM owns the count (here still in the eventfd, as the fake host does not read it).
    CHECK(f.bar(T::kMsixPbaOffset, 8) == 0);
    CHECK(readable_count(f.t->call_fd(1)));
}

TEST_CASE("virtio-pci: ISR status is set by interrupts and cleared by reading it") {
    Fixture f;
    f.t->signal_used_queue(0);
    CHECK(readable_count(f.t->call_fd(0)));
    uint64_t generation = f.bar(0x15, 1);
    f.t->signal_config_change();
    CHECK(readable_count(f.t->config_fd()));
    CHECK(f.bar(0x15, 1) == generation + 1);
    CHECK(f.bar(T::kIsrOffset, 1) == 3);
    CHECK(f.bar(T::kIsrOffset, 1) == 0);
}

TEST_CASE("virtio-pci: device config reads and writes reach the device") {
    Fixture f;
    CHECK(f.bar(T::kDeviceConfigOffset + 2, 2) == 0xa3a2);
    f.set_bar(T::kDeviceConfigOffset + 8, 4, 7);
    CHECK(f.device->config_written == 12);
}

TEST_CASE("virtio-pci: reset clears the driver's state, vectors and bindings, and resets the device") {
    Fixture f;
    f.negotiate(virtio::kFeatureVersion1);
    FakeQueue q0(f.mem, 64, 0x1000);
    f.setup_queue(0, q0.config());
    f.set_bar(0x1a, 2, 1);
    f.enable_msix();
    f.program_vector(1, 0xfee00000, 0x4041, false);
    f.status(f.status() | virtio::kStatusDriverOk);
    f.run();
    REQUIRE(f.device->activations == 1);
    CHECK(f.host.irqfds.size() == 1);
    f.status(0);
    CHECK(f.status() == 0);
    CHECK(f.host.irqfds.empty());
    f.set_bar(0x16, 2, 0);
    CHECK(f.bar(0x1a, 2) == T::kNoVector);
    CHECK(f.bar(0x1c, 2) == 0);
    CHECK(f.bar(0x18, 2) == 64);
    f.run();
    CHECK(f.device->resets == 1);
}

TEST_CASE("virtio-pci: odd accesses are ignored and read as zero") {
    Fixture f;
    f.set_bar(0x14, 2, 0xffff);  // status is one byte
    CHECK(f.status() == 0);
    f.set_bar(0x3e, 2, 1);   // past the common configuration
    f.set_bar(0x7000, 4, 1);  // nothing there
    CHECK(f.bar(0x7000, 4) == 0);
    CHECK(f.bar(0x5000, 8) == 0);
    f.set_bar(0x12, 2, 9);  // num_queues is read-only
    CHECK(f.bar(0x12, 2) == 2);
}

TEST_CASE("virtio-pci: devices with shared memory regions are refused") {
    HeapMemory mem{1 << 20};
    asio::io_context io;
    RecordingHost host;
    auto device = std::make_shared<Device>();
    device->shm = {{0, GuestAddress(0x1'0000'0000), 0x200000}};
    auto t = T::create(device, mem, io, host, kBar, kGsi);
    REQUIRE_FALSE(t);
    CHECK(t.error().message.find("shared memory") != std::string::npos);
}

TEST_CASE("virtio-pci: a device id whose PCI device id would not fit 16 bits is refused") {
    HeapMemory mem{1 << 20};
    asio::io_context io;
    RecordingHost host;
    auto device = std::make_shared<Device>();
    device->id = 0xffff - 0x1040 + 1;
    auto t = T::create(device, mem, io, host, kBar, kGsi);
    REQUIRE_FALSE(t);
    CHECK(t.error().message.find("16 bits") != std::string::npos);
    device->id = 0xffff - 0x1040;
    CHECK(T::create(device, mem, io, host, kBar, kGsi).has_value());
}
