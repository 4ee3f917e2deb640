#include <doctest/doctest.h>

#include <asio.hpp>

#include <algorithm>
#include <thread>

#include "tests/unit/vhost/backend_thread.h"
#include "tests/unit/vhost/device_test_util.h"
#include "tests/unit/vhost/test_util.h"
#include "vhost/backend/backend_memory.h"
#include "vhost/device_kinds.h"
#include "vhost/vhost_user_device.h"

using namespace kite;
using namespace kite::vhost;

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kRamSize = 1 << 20;

using test::RecordingInterrupt;
using test::backend_config;

// Guest RAM on a memfd (mapped through BackendMemory, which implements GuestMemory) and a device connected
// to a BackendThread.
struct DeviceFixture {
    explicit DeviceFixture(std::string tag) : path(test::temp_socket_path(tag)), backend(path, backend_config()) {
        REQUIRE(::ftruncate(ram_fd.get(), kRamSize) == 0);
        REQUIRE(ram.add(MemoryRegion{0, kRamSize, 0x10000000, 0}, ram_fd.get(), 1).has_value());
        VhostMemoryRegion region{GuestAddress(0), kRamSize, ram.span(GuestAddress(0), 0)->data(), BorrowedFd(ram_fd), 0};
        auto config = vhost_user_generic_config(path, 42, 1);
        config.shm_base = GuestAddress(0x100000000);
        config.timeout = Millis(3000);
        device = std::move(VhostUserDevice::connect(config, {region}, io).value());
    }
    ActivateContext context() {
        QueueConfig queue{64, true, GuestAddress(0x1000), GuestAddress(0x2000), GuestAddress(0x3000)};
        return ActivateContext{ram, {queue}, {kick}, irq, interrupt, io, 1ull << 32};
    }

    std::string path;
    test::BackendThread backend;
    asio::io_context io;
    UniqueFd ram_fd{::memfd_create("kite-ram", MFD_CLOEXEC)};
    BackendMemory ram;
    UniqueFd kick = test::make_eventfd();
    UniqueFd irq = test::make_eventfd();
    RecordingInterrupt interrupt;
    std::unique_ptr<VhostUserDevice> device;
};

}  // namespace

TEST_CASE("a vhost-user device reports its id, hides the protocol feature bit and places shm region 0") {
    DeviceFixture f("dev-id");
    auto regions = f.device->shm_regions();
    CHECK(f.device->device_id() == 42);
    CHECK((f.device->device_features() & kFeatureProtocolFeatures) == 0);
    CHECK((f.device->device_features() & (1ull << 32)) != 0);
    CHECK(f.device->interrupt_status_always_used());
    REQUIRE(regions.size() == 1);
    CHECK(regions[0].base == GuestAddress(0x100000000));
    CHECK(regions[0].size == 64 * kPage);
    CHECK(f.device->shm_table().window(0) != nullptr);
}

TEST_CASE("a vhost-user device reads its config space from the back-end, zero beyond it") {
    DeviceFixture f("dev-config");
    std::vector<uint8_t> data(4);
    f.device->read_config(0, data);
    CHECK(data == std::vector<uint8_t>{0xaa, 0xbb, 0, 0});
    f.device->read_config(1000, data);
    CHECK(data == std::vector<uint8_t>{0, 0, 0, 0});
}

TEST_CASE("a driver's config write reads back at once and reaches the back-end from the event loop") {
    DeviceFixture f("dev-config-write");
    const uint8_t written[1] = {0xcc};
    f.device->write_config(1, written);  // a vCPU thread: nothing is sent from here

    std::vector<uint8_t> data(2);
    f.device->read_config(0, data);
    CHECK(data == std::vector<uint8_t>{0xaa, 0xcc});

    auto backend_config_space = [&] {
        return f.backend.post([](Backend& b) { return std::vector<uint8_t>(b.config_space().begin(), b.config_space().end()); }).get();
    };
    CHECK(backend_config_space() == std::vector<uint8_t>{0xaa, 0xbb});  // not sent before the loop runs
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (backend_config_space()[1] != 0xcc && std::chrono::steady_clock::now() < deadline)
        f.io.run_for(std::chrono::milliseconds(10));
    CHECK(backend_config_space() == std::vector<uint8_t>{0xaa, 0xcc});
}

TEST_CASE("activate hands memory, rings, kick and irq fds to the back-end and sets DRIVER_OK") {
    DeviceFixture f("dev-activate");
    REQUIRE(f.device->activate(f.context()).has_value());
    auto state = f.backend.post([](Backend& b) {
        auto& r = b.vrings()[0];
        return std::tuple(r.num, r.enabled, r.queue.has_value(), r.kick.valid(), r.call.valid(), b.status(),
                          b.memory().region_count());
    });
    CHECK(state.get() == std::tuple(64u, true, true, true, true, uint8_t{0x0f}, size_t{1}));
}

TEST_CASE("with per-queue call fds (virtio-pci) the back-end signals the queue's fd, not the irq fd") {
    DeviceFixture f("dev-callfds");
    UniqueFd call = test::make_eventfd();
    ActivateContext ctx = f.context();
    ctx.irq_fd = BorrowedFd();
    ctx.call_fds = {call};
    REQUIRE(f.device->activate(std::move(ctx)).has_value());
    auto wrote = f.backend.post([](Backend& b) {
        uint64_t one = 1;
        return ::write(b.vrings()[0].call.get(), &one, sizeof one);
    });
    REQUIRE(wrote.get() == 8);
    uint64_t count = 0;
    CHECK(::read(call.get(), &count, sizeof count) == 8);
    CHECK(count == 1);
    CHECK(::read(f.irq.get(), &count, sizeof count) == -1);  // nothing there (non-blocking: EAGAIN)
}

TEST_CASE("a config change from the back-end raises a config interrupt after activate") {
    DeviceFixture f("dev-cfgchange");
    REQUIRE(f.device->activate(f.context()).has_value());
    auto sent = f.backend.post([](Backend& b) { return b.config_change(); });
    while (sent.wait_for(std::chrono::milliseconds(1)) != std::future_status::ready) f.io.run_for(std::chrono::milliseconds(5));
    // The device re-reads the config after its reply went out, then interrupts.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (f.interrupt.config_changes == 0 && std::chrono::steady_clock::now() < deadline) f.io.run_for(std::chrono::milliseconds(5));
    CHECK(sent.get().has_value());
    CHECK(f.interrupt.config_changes == 1);
    CHECK(f.device->online());
}

TEST_CASE("reset stops the rings and drops every shm mapping") {
    DeviceFixture f("dev-reset");
    REQUIRE(f.device->activate(f.context()).has_value());
    auto map = f.backend.post([](Backend& b) {
        auto fd = test::pattern_memfd(kPage, 1);
        return b.shmem_map(0, fd.get(), 0, 0, kPage, 0);
    });
    while (map.wait_for(std::chrono::milliseconds(1)) != std::future_status::ready) f.io.run_for(std::chrono::milliseconds(5));
    REQUIRE(map.get().has_value());
    REQUIRE(f.device->shm_table().window(0)->mappings().size() == 1);

    f.device->reset();

    auto started = f.backend.post([](Backend& b) { return std::pair(b.vrings()[0].started, b.status()); });
    CHECK(started.get() == std::pair(false, uint8_t{0}));
    CHECK(f.device->shm_table().window(0)->mappings().empty());
}

TEST_CASE("virtio-fs config carries the tag and one request queue; an overlong tag is refused") {
    auto config = vhost_user_fs_config("/tmp/x.sock", "myfs", 16 * kPage);
    REQUIRE(config.has_value());
    CHECK(config->device_id == 26);
    CHECK(config->num_queues == 2);
    CHECK(std::string(reinterpret_cast<const char*>(config->local_config.data())) == "myfs");
    CHECK(config->local_config[36] == 1);
    CHECK(config->local_shm_sizes == std::vector<uint64_t>{16 * kPage});
    CHECK_FALSE(vhost_user_fs_config("/tmp/x.sock", std::string(37, 'a')).has_value());
}

TEST_CASE("vhost-user-blk asks GET_CONFIG for struct virtio_blk_config only, which libvhost-user back-ends accept") {
    auto config = vhost_user_blk_config("/tmp/x.sock");
    CHECK(config.device_id == 2);
    CHECK(config.config_size == 60);
    CHECK(vhost_user_generic_config("/tmp/x.sock", 42, 1).config_size == kMaxConfigSize);
}

TEST_CASE("a guest writing the config space in a loop leaves one SET_CONFIG pending, with the latest bytes") {
    DeviceFixture f("dev-config-flood");
    for (int i = 0; i < 1000; ++i) {
        const uint8_t written[1] = {static_cast<uint8_t>(i)};
        f.device->write_config(i % 2, written);  // a vCPU thread: nothing is sent from here
    }
    const size_t pending = f.device->pending_posts();

    auto backend_config_space = [&] {
        return f.backend.post([](Backend& b) { return std::vector<uint8_t>(b.config_space().begin(), b.config_space().end()); }).get();
    };
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (backend_config_space() != std::vector<uint8_t>{998 % 256, 999 % 256} && std::chrono::steady_clock::now() < deadline)
        f.io.run_for(std::chrono::milliseconds(10));

    CHECK(pending == 1);
    CHECK(backend_config_space() == std::vector<uint8_t>{998 % 256, 999 % 256});
    CHECK(f.device->pending_posts() == 0);
}

TEST_CASE("a flood of CONFIG_CHANGE_MSG from the back-end coalesces into one pending refresh") {
    const std::string path = test::temp_socket_path("dev-cfgflood");
    auto config = backend_config();
    config.protocol_features &= ~protocol_feature::kReplyAck;  // so the back-end sends without waiting
    test::BackendThread backend(path, config);
    asio::io_context io;
    auto device_config = vhost_user_generic_config(path, 42, 1);
    device_config.timeout = Millis(3000);
    auto device = std::move(VhostUserDevice::connect(device_config, {}, io).value());
    // Not activated: the connection refreshes the space all the same, without an interrupt to raise.

    auto flood = backend.post([](Backend& b) {
        for (int i = 0; i < 150; ++i)  // what the socket buffer takes at once
            if (auto ok = b.config_change(); !ok) return ok.error().message;
        return std::string();
    });
    REQUIRE(flood.get() == "");
    size_t most_pending = 0, handlers = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (std::chrono::steady_clock::now() < deadline) {
        io.restart();
        size_t ran = io.poll_one();
        handlers += ran;
        most_pending = std::max(most_pending, device->pending_posts());
        if (ran == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }

    CHECK(most_pending == 1);
    CHECK(handlers < 60);  // 150 messages, served 64 at a time, each batch one refresh
    CHECK(device->online());
}
