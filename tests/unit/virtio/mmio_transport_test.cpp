#include <doctest/doctest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <cstddef>
#include <cstring>

#include "base/asio_loop.h"

#include "devices/virtio/mmio_transport.h"
#include "devices/virtio/spec.h"
#include "fake_queue.h"
#include "mmio_driver.h"

using namespace kite;
using namespace kite::test;

namespace {

// A device that records what the transport asks of it.
class RecordingDevice : public VirtioDevice {
public:
    uint32_t device_id() const override { return 42; }
    uint64_t device_features() const override { return virtio::kCommonFeatures | 1; }
    std::vector<uint16_t> queue_max_sizes() const override { return {64, 16}; }
    void read_config(uint64_t offset, std::span<uint8_t> data) override {
        for (size_t i = 0; i < data.size(); ++i) data[i] = offset + i < 4 ? uint8_t(0xa0 + offset + i) : 0;
    }
    void write_config(uint64_t offset, std::span<const uint8_t> data) override {
        last_config_write = offset + data.size();
    }
    Result<void> activate(ActivateContext ctx) override {
        ++activations;
        queues = ctx.queues;
        features = ctx.driver_features;
        interrupt = &ctx.interrupt;
        if (fail_activate) return fail("refused");
        return {};
    }
    void reset() override { ++resets; }
    std::vector<ShmRegion> shm_regions() const override { return {{1, GuestAddress(0x1'2345'6000), 0x20000}}; }

    bool fail_activate = false;
    int activations = 0;
    int resets = 0;
    uint64_t features = 0;
    uint64_t last_config_write = 0;
    std::vector<QueueConfig> queues;
    VirtioInterrupt* interrupt = nullptr;
};

struct Fixture {
    // `page`: the register page a VMM would map over the window (default: the transport's own).
    explicit Fixture(std::shared_ptr<std::byte> page = {})
        : transport(*VirtioMmioTransport::create(device, mem, io, std::move(page))), driver(*transport) {}
    HeapMemory mem{1 << 20};
    asio::io_context io;
    std::shared_ptr<RecordingDevice> device = std::make_shared<RecordingDevice>();
    std::shared_ptr<VirtioMmioTransport> transport;
    MmioDriver driver;
};

// Runs what was posted so far (restart: poll() leaves a drained io_context stopped).
void run_pending(asio::io_context& io) {
    io.restart();
    io.poll();
}

uint64_t eventfd_count(int fd) {
    uint64_t value = 0;
    if (::read(fd, &value, sizeof value) != sizeof value) return 0;
    return value;
}

}  // namespace

TEST_CASE("transport identifies itself as a version 2 virtio-mmio device") {
    Fixture f;

    CHECK(f.driver.read32(0x000) == 0x74726976);
    CHECK(f.driver.read32(0x004) == 2);
    CHECK(f.driver.read32(0x008) == 42);
    CHECK(f.driver.read32(0x00c) == VirtioMmioTransport::kVendorId);
}

TEST_CASE("device features are read in two 32-bit halves") {
    Fixture f;

    CHECK(f.driver.device_features() == (virtio::kCommonFeatures | 1));
}

TEST_CASE("register accesses that are not 4 bytes wide are ignored") {
    Fixture f;
    uint8_t narrow[2] = {0xff, 0xff};

    f.transport->read(0x000, narrow);
    f.transport->write(0x070, std::span<const uint8_t>(narrow, 1));

    CHECK(narrow[0] == 0);
    CHECK(f.driver.read32(0x070) == 0);
}

TEST_CASE("features without VERSION_1 leave FEATURES_OK clear") {
    Fixture f;

    uint32_t status = f.driver.negotiate(1);

    CHECK_FALSE((status & virtio::kStatusFeaturesOk) != 0);
}

TEST_CASE("features the device did not offer leave FEATURES_OK clear") {
    Fixture f;

    uint32_t status = f.driver.negotiate(virtio::kFeatureVersion1 | 2);

    CHECK_FALSE((status & virtio::kStatusFeaturesOk) != 0);
}

TEST_CASE("offered features with VERSION_1 are accepted") {
    Fixture f;

    uint32_t status = f.driver.negotiate(virtio::kFeatureVersion1 | virtio::kFeatureEventIdx);

    CHECK((status & virtio::kStatusFeaturesOk) != 0);
}

TEST_CASE("DRIVER_OK activates the device on the event loop with the queues and features") {
    Fixture f;
    FakeQueue fq(f.mem, 16);
    f.driver.negotiate(virtio::kFeatureVersion1);
    f.driver.setup_queue(1, fq.config());
    f.driver.driver_ok();
    int before_run = f.device->activations;

    run_pending(f.io);

    CHECK(before_run == 0);
    CHECK(f.device->activations == 1);
    CHECK(f.device->features == virtio::kFeatureVersion1);
    REQUIRE(f.device->queues.size() == 2);
    CHECK_FALSE(f.device->queues[0].ready);
    CHECK(f.device->queues[1].ready);
    CHECK(f.device->queues[1].desc == fq.config().desc);
    CHECK(f.device->queues[1].used == fq.config().used);
}

TEST_CASE("DRIVER_OK without FEATURES_OK does not activate") {
    Fixture f;
    f.driver.write32(0x70, virtio::kStatusAcknowledge | virtio::kStatusDriver);
    f.driver.driver_ok();

    run_pending(f.io);

    CHECK(f.device->activations == 0);
    CHECK_FALSE((f.driver.read32(0x70) & virtio::kStatusDriverOk) != 0);
}

TEST_CASE("QueueNumMax reports the device maximum and zero for absent queues") {
    Fixture f;

    f.driver.write32(0x30, 0);
    uint32_t first = f.driver.read32(0x34);
    f.driver.write32(0x30, 2);
    uint32_t absent = f.driver.read32(0x34);

    CHECK(first == 64);
    CHECK(absent == 0);
}

TEST_CASE("a queue larger than its maximum is not made ready and the device needs a reset") {
    Fixture f;
    FakeQueue fq(f.mem, 32);
    f.driver.negotiate(virtio::kFeatureVersion1);

    f.driver.setup_queue(1, fq.config());

    CHECK(f.driver.read32(0x44) == 0);
    CHECK((f.driver.read32(0x70) & virtio::kStatusDeviceNeedsReset) != 0);
}

TEST_CASE("a status write that repeats DEVICE_NEEDS_RESET keeps its bits and adds FAILED") {
    Fixture f;
    FakeQueue fq(f.mem, 32);
    f.driver.negotiate(virtio::kFeatureVersion1);
    f.driver.setup_queue(1, fq.config());
    uint32_t status = f.driver.read32(0x70);

    f.driver.write32(0x70, status | virtio::kStatusFailed);  // Linux: virtio_add_status() reads, ORs, writes

    CHECK(f.driver.read32(0x70) == (status | virtio::kStatusFailed));
}

TEST_CASE("queue registers written while the queue is ready are ignored") {
    Fixture f;
    FakeQueue fq(f.mem, 16);
    f.driver.negotiate(virtio::kFeatureVersion1);
    f.driver.setup_queue(0, fq.config());

    f.driver.write32(0x38, 8);
    f.driver.write32(0x80, 0x8000);

    CHECK(f.driver.read32(0x38) == 16);
    CHECK(f.driver.read32(0x80) == fq.config().desc.value());
}

TEST_CASE("queue registers written after DRIVER_OK are ignored") {
    Fixture f;
    f.driver.negotiate(virtio::kFeatureVersion1);
    f.driver.driver_ok();

    f.driver.write32(0x30, 0);
    f.driver.write32(0x38, 16);

    CHECK(f.driver.read32(0x38) == 0);
}

TEST_CASE("an absent shared memory region reads all-ones") {
    Fixture f;

    f.driver.write32(0xac, 0);

    CHECK(f.driver.read32(0xb0) == 0xffffffff);
    CHECK(f.driver.read32(0xb4) == 0xffffffff);
    CHECK(f.driver.read32(0xb8) == 0xffffffff);
    CHECK(f.driver.read32(0xbc) == 0xffffffff);
}

TEST_CASE("a present shared memory region reads its length and base") {
    Fixture f;

    f.driver.write32(0xac, 1);

    CHECK(f.driver.read32(0xb0) == 0x20000);
    CHECK(f.driver.read32(0xb4) == 0);
    CHECK(f.driver.read32(0xb8) == 0x23456000);
    CHECK(f.driver.read32(0xbc) == 1);
}

TEST_CASE("writing status 0 resets the registers and the active device") {
    Fixture f;
    FakeQueue fq(f.mem, 16);
    f.driver.negotiate(virtio::kFeatureVersion1);
    f.driver.setup_queue(0, fq.config());
    f.driver.driver_ok();
    run_pending(f.io);

    f.driver.write32(0x70, 0);
    run_pending(f.io);

    CHECK(f.driver.read32(0x70) == 0);
    CHECK(f.driver.read32(0x44) == 0);
    CHECK(f.device->resets == 1);
}

TEST_CASE("a failed activation sets DEVICE_NEEDS_RESET and raises a config interrupt") {
    Fixture f;
    f.device->fail_activate = true;
    f.driver.negotiate(virtio::kFeatureVersion1);
    f.driver.driver_ok();

    run_pending(f.io);

    CHECK((f.driver.read32(0x70) & virtio::kStatusDeviceNeedsReset) != 0);
    CHECK(f.driver.read32(0x60) == 2);
    CHECK(eventfd_count(f.transport->irq_fd()) == 1);
}

TEST_CASE("a used-buffer interrupt sets bit 0 until the driver acknowledges it") {
    Fixture f;

    f.transport->signal_used_queue(0);
    uint32_t before_ack = f.driver.read32(0x60);
    f.driver.write32(0x64, 1);
    uint32_t after_ack = f.driver.read32(0x60);

    CHECK(before_ack == 1);
    CHECK(after_ack == 0);
    CHECK(eventfd_count(f.transport->irq_fd()) == 1);
}

TEST_CASE("only a device whose status always reports a used buffer gets an InterruptACK sink") {
    // RecordingDevice tracks its interrupts: every acknowledgement must reach the transport.
    Fixture f;
    CHECK(f.transport->used_ack_sink_fd() == -1);

    // A device that cannot tell (vhost-user): acknowledging bit 0 alone changes nothing, so KVM may absorb
    // that write (the VMM registers the sink as an ioeventfd with datamatch 1); the status stays the same.
    class AlwaysUsed : public RecordingDevice {
    public:
        bool interrupt_status_always_used() const override { return true; }
    };
    HeapMemory mem{1 << 20};
    asio::io_context io;
    auto t = *VirtioMmioTransport::create(std::make_shared<AlwaysUsed>(), mem, io);
    REQUIRE(t->used_ack_sink_fd() >= 0);
    MmioDriver driver{*t};
    CHECK(driver.read32(0x060) == VirtioMmioTransport::kInterruptUsedBuffer);
    driver.write32(VirtioMmioTransport::kInterruptAckOffset, VirtioMmioTransport::kInterruptUsedBuffer);
    CHECK(driver.read32(0x060) == VirtioMmioTransport::kInterruptUsedBuffer);
    t->signal_config_change();  // bit 1 is tracked as ever and is cleared only by an ACK that reaches write()
    CHECK(driver.read32(0x060) == 3);
    driver.write32(VirtioMmioTransport::kInterruptAckOffset, 3);
    CHECK(driver.read32(0x060) == VirtioMmioTransport::kInterruptUsedBuffer);
}

TEST_CASE("a config change bumps ConfigGeneration and sets interrupt bit 1") {
    Fixture f;
    uint32_t before = f.driver.read32(0xfc);

    f.transport->signal_config_change();

    CHECK(f.driver.read32(0xfc) == before + 1);
    CHECK(f.driver.read32(0x60) == 2);
}

TEST_CASE("a QueueNotify write that reaches the transport kicks that queue's eventfd") {
    Fixture f;

    f.driver.write32(0x50, 1);
    f.driver.write32(0x50, 7);

    CHECK(eventfd_count(f.transport->kick_fd(0)) == 0);
    CHECK(eventfd_count(f.transport->kick_fd(1)) == 1);
}

TEST_CASE("config space accesses of any width go to the device") {
    Fixture f;
    uint8_t byte[1];
    uint8_t word[2] = {1, 2};

    f.transport->read(0x102, byte);
    f.transport->write(0x106, word);

    CHECK(byte[0] == 0xa2);
    CHECK(f.device->last_config_write == 8);
}

TEST_CASE("a transport destroyed with its event loop pending drops the posted activation") {
    HeapMemory mem(1 << 20);
    asio::io_context io;
    auto device = std::make_shared<RecordingDevice>();
    {
        auto transport = *VirtioMmioTransport::create(device, mem, io);
        MmioDriver driver(*transport);
        driver.negotiate(virtio::kFeatureVersion1);
        driver.driver_ok();
    }

    run_pending(io);

    CHECK(device->activations == 0);
    CHECK(device->resets == 1);
}

namespace {

// A device whose config space the test changes, as a back-end's CONFIG_CHANGE_MSG would.
class ChangingConfigDevice : public RecordingDevice {
public:
    void read_config(uint64_t offset, std::span<uint8_t> data) override {
        for (size_t i = 0; i < data.size(); ++i) data[i] = offset + i < config.size() ? config[offset + i] : 0;
    }
    void write_config(uint64_t offset, std::span<const uint8_t> data) override {
        for (size_t i = 0; i < data.size() && offset + i < config.size(); ++i) config[offset + i] = data[i];
    }
    std::array<uint8_t, 8> config{1, 2, 3, 4, 5, 6, 7, 8};
};

// What the guest reads at `offset` of a register page mapped over the window.
uint32_t page_word(std::span<const std::byte> page, uint64_t offset) {
    uint32_t v;
    std::memcpy(&v, page.data() + offset, 4);
    return v;
}

}  // namespace

TEST_CASE("the register page the VMM maps over the window holds every register as a read returns it") {
    auto mapped = std::make_shared<std::array<uint32_t, 1024>>();
    Fixture f(std::shared_ptr<std::byte>(mapped, reinterpret_cast<std::byte*>(mapped->data())));
    auto page = f.transport->register_page();
    REQUIRE(page.data() == reinterpret_cast<std::byte*>(mapped->data()));

    // Walk the driver through selectors, features, a queue and DRIVER_OK, checking every register after
    // each step: the page must never be behind what a register read (an exit) would answer.
    auto check_all = [&](const char* step) {
        CAPTURE(step);
        for (uint64_t off = 0; off < VirtioMmioTransport::kConfigOffset; off += 4) {
            CAPTURE(off);
            CHECK(page_word(page, off) == f.driver.read32(off));
        }
    };
    CHECK(page_word(page, 0x000) == VirtioMmioTransport::kMagic);
    CHECK(page_word(page, 0x008) == 42);
    CHECK(std::to_integer<uint8_t>(page[0x101]) == 0xa1);  // config space, byte by byte
    check_all("fresh");
    f.driver.write32(0x014, 1);
    CHECK(page_word(page, 0x010) == uint32_t(f.device->device_features() >> 32));
    f.driver.write32(0x0ac, 1);  // SHMSel: region 1 exists
    CHECK(page_word(page, 0x0b8) == 0x2345'6000);
    f.driver.write32(0x0ac, 0);
    CHECK(page_word(page, 0x0b0) == 0xffffffff);
    check_all("selectors");
    f.driver.negotiate(virtio::kFeatureVersion1);
    f.driver.write32(0x030, 1);
    CHECK(page_word(page, 0x034) == 16);
    f.driver.write32(0x038, 8);
    f.driver.write32(0x080, 0x1000);
    f.driver.write32(0x090, 0x2000);
    f.driver.write32(0x0a0, 0x3000);
    f.driver.write32(0x044, 1);
    CHECK(page_word(page, 0x044) == 1);
    check_all("queue 1 set up");
    f.driver.driver_ok();
    CHECK(page_word(page, 0x070) == f.driver.read32(0x070));
    CHECK((page_word(page, 0x070) & virtio::kStatusDriverOk) != 0);
    run_pending(f.io);

    // Asynchronous changes: the bit is in the page by the time the interrupt eventfd fires.
    f.transport->signal_used_queue(1);
    CHECK(eventfd_count(f.transport->irq_fd()) == 1);
    CHECK(page_word(page, 0x060) == 1);
    f.driver.write32(0x064, 1);
    CHECK(page_word(page, 0x060) == 0);
    f.transport->needs_reset();
    CHECK((page_word(page, 0x070) & virtio::kStatusDeviceNeedsReset) != 0);
    CHECK(page_word(page, 0x060) == 2);
    check_all("needs reset");
    f.driver.write32(0x070, 0);
    CHECK(page_word(page, 0x070) == 0);
    CHECK(page_word(page, 0x060) == 0);
    check_all("reset");
}

TEST_CASE("a register page the VMM hands over is cleared of what it held") {
    auto mapped = std::make_shared<std::array<uint32_t, 1024>>();
    mapped->fill(0xdeadbeef);  // whatever the VMM's page held before
    Fixture f(std::shared_ptr<std::byte>(mapped, reinterpret_cast<std::byte*>(mapped->data())));

    CHECK(f.transport->register_page().data() == reinterpret_cast<std::byte*>(mapped->data()));
    CHECK(f.driver.read32(0x060) == 0);
    CHECK(f.driver.read32(0x0fc) == 0);
    CHECK(f.driver.read32(0x020) == 0);  // a write-only register reads 0, not what the page held
    uint8_t tail[4];
    f.transport->read(0xffc, tail);
    CHECK(tail[0] == 0);
}

TEST_CASE("a config space change reaches the page between two ConfigGeneration bumps") {
    HeapMemory mem{1 << 20};
    asio::io_context io;
    auto device = std::make_shared<ChangingConfigDevice>();
    auto t = *VirtioMmioTransport::create(device, mem, io);
    MmioDriver driver{*t};
    auto page = t->register_page();
    const uint32_t gen0 = driver.read32(0xfc);

    // Nothing changed: the interrupt still needs a new generation, one bump is enough.
    t->signal_config_change();
    CHECK(driver.read32(0xfc) == gen0 + 1);
    // Changed: one bump before the copy and one after, so a driver whose reads straddle it retries.
    device->config[0] = 0x77;
    t->signal_config_change();
    CHECK(driver.read32(0xfc) == gen0 + 3);
    CHECK(std::to_integer<uint8_t>(page[0x100]) == 0x77);
    // A driver's own config write shows at once, and counts as a change of the space.
    uint8_t two[2] = {0xaa, 0xbb};
    t->write(0x106, two);
    CHECK(std::to_integer<uint8_t>(page[0x106]) == 0xaa);
    CHECK(std::to_integer<uint8_t>(page[0x107]) == 0xbb);
    CHECK(driver.read32(0xfc) == gen0 + 5);
    uint8_t one[1];
    t->read(0x107, one);
    CHECK(one[0] == 0xbb);
}

TEST_CASE("reads that reach the transport are counted") {
    Fixture f;
    CHECK(f.transport->reads_handled() == 0);
    (void)f.driver.read32(0x000);
    uint8_t byte[1];
    f.transport->read(0x100, byte);
    CHECK(f.transport->reads_handled() == 2);
}

TEST_CASE("describe names each ready queue's ring indices, event fields and an unread kick") {
    Fixture f;
    FakeQueue fq(f.mem, 16);
    f.driver.negotiate(virtio::kFeatureVersion1 | virtio::kFeatureEventIdx);
    f.driver.setup_queue(1, fq.config());
    f.driver.driver_ok();
    fq.set_avail_idx(5);
    fq.set_used_event(3);
    f.driver.write32(0x50, 1);  // a kick nobody reads

    std::string line = f.transport->describe();

    CHECK(line.find("virtio-mmio device 42: status 0xf") == 0);
    CHECK(line.find("queue 0") == std::string::npos);  // not ready
    CHECK(line.find("queue 1 (size 16): avail idx 5 flags 0, used idx 0 flags 0, used_event 3, avail_event 0, "
                    "1 kick(s) unread") != std::string::npos);
}

TEST_CASE("a driver looping reset and DRIVER_OK leaves one handler pending, which runs the latest state") {
    Fixture f;
    FakeQueue fq(f.mem, 16);
    f.driver.negotiate(virtio::kFeatureVersion1);
    f.driver.setup_queue(0, fq.config());
    f.driver.driver_ok();
    run_pending(f.io);
    REQUIRE(f.device->activations == 1);

    for (int i = 0; i < 1000; ++i) {
        f.driver.write32(0x70, 0);
        f.driver.negotiate(virtio::kFeatureVersion1);
        f.driver.setup_queue(i % 2, fq.config());  // the last turn sets up queue 1
        f.driver.driver_ok();
    }
    f.io.restart();
    size_t handlers = f.io.poll();

    CHECK(handlers == 1);
    CHECK(f.device->resets == 1);
    CHECK(f.device->activations == 2);
    REQUIRE(f.device->queues.size() == 2);
    CHECK_FALSE(f.device->queues[0].ready);
    CHECK(f.device->queues[1].ready);
}

TEST_CASE("a reset that follows an activation not yet run leaves the device untouched") {
    Fixture f;
    f.driver.negotiate(virtio::kFeatureVersion1);
    f.driver.driver_ok();
    f.driver.write32(0x70, 0);

    run_pending(f.io);

    CHECK(f.device->activations == 0);
    CHECK(f.device->resets == 0);
}
