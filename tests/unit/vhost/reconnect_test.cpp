// Reconnect of a vhost-user device: the back-end (vhost::Backend on its own thread) is killed and a new
// one started on the same socket path; the device must notice, drop the dead back-end's mappings, and
// replay its state to the new one. The test thread plays the VMM thread (runs the io_context).
#include <doctest/doctest.h>

#include <sys/mman.h>

#include <asio.hpp>

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
constexpr GuestAddress kUsedRing(0x3000);

using test::RecordingInterrupt;
using test::backend_config;

// What a back-end holds after the front-end set it up, read on the back-end's thread.
struct BackendState {
    uint64_t features = 0, protocol_features = 0;
    bool owner = false, has_channel = false;
    size_t memory_regions = 0;
    uint32_t num = 0, base = 0;
    bool enabled = false, started = false, kick = false, call = false;
    uint8_t status = 0;
    uint8_t inflight_marker = 0;  // first byte of the inflight buffer, 0 without one
    auto operator<=>(const BackendState&) const = default;
};

BackendState read_state(Backend& b) {
    const auto& r = b.vrings()[0];
    BackendState s{b.acked_features(), b.protocol_features(), b.owner_set(), b.has_backend_channel(),
                   b.memory().region_count(), r.num, r.base, r.enabled, r.started, r.kick.valid(), r.call.valid(),
                   b.status(), 0};
    if (b.inflight_fd() >= 0) {
        uint8_t byte = 0;
        if (::pread(b.inflight_fd(), &byte, 1, 0) == 1) s.inflight_marker = byte;
    }
    return s;
}

struct ReconnectFixture {
    explicit ReconnectFixture(std::string tag, Millis reconnect_timeout = Millis(5000))
        : path(test::temp_socket_path(tag)), backend(std::make_unique<test::BackendThread>(path, backend_config())) {
        REQUIRE(::ftruncate(ram_fd.get(), kRamSize) == 0);
        REQUIRE(ram.add(MemoryRegion{0, kRamSize, 0x10000000, 0}, ram_fd.get(), 1).has_value());
        VhostMemoryRegion region{GuestAddress(0), kRamSize, ram.span(GuestAddress(0), 0)->data(), BorrowedFd(ram_fd), 0};
        auto config = vhost_user_generic_config(path, 42, 1);
        config.shm_base = GuestAddress(0x100000000);
        config.timeout = Millis(3000);
        config.reconnect_timeout = reconnect_timeout;
        config.reconnect_interval = Millis(10);
        device = std::move(VhostUserDevice::connect(config, {region}, io).value());
    }
    ActivateContext context() {
        QueueConfig queue{64, true, GuestAddress(0x1000), GuestAddress(0x2000), kUsedRing};
        return ActivateContext{ram, {queue}, {kick}, irq, interrupt, io, 1ull << 32};
    }
    // Runs the loop until `done` or 5 s pass.
    template <class F>
    bool run_until(F done) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (!done() && std::chrono::steady_clock::now() < deadline) run_for(std::chrono::milliseconds(5));
        return done();
    }
    // The loop runs out of work whenever nothing is pending; the VMM's never does (it holds a work guard).
    void run_for(std::chrono::milliseconds time) {
        if (io.stopped()) io.restart();
        io.run_for(time);
    }
    // Runs `action` on the back-end thread while this thread serves the loop (the back-end may be waiting
    // for the backend channel).
    template <class F>
    auto on_backend(F action) {
        auto future = backend->post(std::move(action));
        while (future.wait_for(std::chrono::milliseconds(1)) != std::future_status::ready) run_for(std::chrono::milliseconds(5));
        return future.get();
    }
    void kill_backend() { backend.reset(); }
    void restart_backend() { backend = std::make_unique<test::BackendThread>(path, backend_config()); }
    void set_used_index(uint16_t index) { REQUIRE(ram.write_obj(GuestAddress(kUsedRing.value() + 2), index)); }

    std::string path;
    std::unique_ptr<test::BackendThread> backend;
    asio::io_context io;
    UniqueFd ram_fd{::memfd_create("kite-ram", MFD_CLOEXEC)};
    BackendMemory ram;
    UniqueFd kick = test::make_eventfd();
    UniqueFd irq = test::make_eventfd();
    RecordingInterrupt interrupt;
    std::unique_ptr<VhostUserDevice> device;
};

Result<void> map_one_page(Backend& b) {
    auto fd = test::pattern_memfd(kPage, 3);
    return b.shmem_map(0, fd.get(), 0, 0, kPage, 0);
}

}  // namespace

TEST_CASE("a restarted back-end gets features, memory, rings at the used index, fds, status and the inflight buffer") {
    ReconnectFixture f("rc-replay");
    REQUIRE(f.device->activate(f.context()).has_value());
    auto before = f.on_backend(read_state);
    f.on_backend([](Backend& b) {
        uint8_t marker = 0x5a;  // as if the back-end had recorded a request in flight
        return ::pwrite(b.inflight_fd(), &marker, 1, 0);
    });
    f.set_used_index(7);

    f.kill_backend();
    REQUIRE(f.run_until([&] { return !f.device->online(); }));
    f.restart_backend();
    REQUIRE(f.run_until([&] { return f.device->online(); }));

    auto after = f.on_backend(read_state);
    BackendState expected = before;
    expected.base = 7;
    expected.inflight_marker = 0x5a;
    CHECK(before.base == 0);
    CHECK(before.inflight_marker == 0);
    CHECK(after == expected);
    CHECK(f.device->reconnects() == 1);
    CHECK(f.interrupt.resets == 0);
}

TEST_CASE("mappings of a dead back-end are dropped and the new back-end can map again") {
    ReconnectFixture f("rc-mappings");
    REQUIRE(f.device->activate(f.context()).has_value());
    REQUIRE(f.on_backend(map_one_page).has_value());
    REQUIRE(f.device->shm_table().window(0)->mappings().size() == 1);

    f.kill_backend();
    REQUIRE(f.run_until([&] { return !f.device->online(); }));
    f.run_for(std::chrono::milliseconds(20));
    CHECK(f.device->shm_table().window(0)->mappings().empty());

    f.restart_backend();
    REQUIRE(f.run_until([&] { return f.device->online(); }));
    CHECK(f.on_backend(map_one_page).has_value());
    CHECK(f.device->shm_table().window(0)->mappings().size() == 1);
}

TEST_CASE("a reconnect kicks every ring and interrupts the driver once per ring") {
    ReconnectFixture f("rc-kick");
    REQUIRE(f.device->activate(f.context()).has_value());
    uint64_t drained = 0;
    (void)::eventfd_read(f.kick.get(), &drained);

    f.kill_backend();
    REQUIRE(f.run_until([&] { return !f.device->online(); }));
    f.restart_backend();
    REQUIRE(f.run_until([&] { return f.device->online(); }));

    uint64_t kicks = 0;
    CHECK(::eventfd_read(f.kick.get(), &kicks) == 0);
    CHECK(kicks == 1);
    CHECK(f.interrupt.used == 1);
}

TEST_CASE("a back-end that comes back with another config space raises a config change, the same one does not") {
    ReconnectFixture f("rc-config");
    REQUIRE(f.device->activate(f.context()).has_value());
    f.kill_backend();
    REQUIRE(f.run_until([&] { return !f.device->online(); }));
    f.restart_backend();
    REQUIRE(f.run_until([&] { return f.device->online(); }));
    CHECK(f.interrupt.config_changes == 0);

    f.kill_backend();
    REQUIRE(f.run_until([&] { return !f.device->online(); }));
    auto resized = backend_config();
    resized.config_space = {0xcc, 0xbb};
    f.backend = std::make_unique<test::BackendThread>(f.path, resized);
    REQUIRE(f.run_until([&] { return f.device->online(); }));
    std::vector<uint8_t> config(2);
    f.device->read_config(0, config);
    CHECK(f.interrupt.config_changes == 1);
    CHECK(config == std::vector<uint8_t>{0xcc, 0xbb});
}

TEST_CASE("no back-end within the reconnect timeout: DEVICE_NEEDS_RESET once, the config space still reads") {
    ReconnectFixture f("rc-timeout", Millis(100));
    REQUIRE(f.device->activate(f.context()).has_value());

    f.kill_backend();
    REQUIRE(f.run_until([&] { return f.interrupt.resets > 0; }));
    f.run_for(std::chrono::milliseconds(200));

    std::vector<uint8_t> config(2);
    f.device->read_config(0, config);
    CHECK(f.interrupt.resets == 1);
    CHECK_FALSE(f.device->online());
    CHECK(config == std::vector<uint8_t>{0xaa, 0xbb});
}

TEST_CASE("after giving up, a driver reset and a new activate find the back-end again") {
    ReconnectFixture f("rc-reactivate", Millis(300));
    REQUIRE(f.device->activate(f.context()).has_value());
    f.kill_backend();
    REQUIRE(f.run_until([&] { return f.interrupt.resets > 0; }));

    f.device->reset();
    f.restart_backend();
    REQUIRE(f.device->activate(f.context()).has_value());
    REQUIRE(f.run_until([&] { return f.device->online(); }));

    auto state = f.on_backend(read_state);
    CHECK(state.started);
    CHECK(state.base == 0);
    CHECK(state.status == 0x0f);
}

TEST_CASE("reconnecting leaks no fds: the open-fd count is the same before the kill and after the replay") {
    ReconnectFixture f("rc-fds");
    REQUIRE(f.device->activate(f.context()).has_value());
    f.on_backend(read_state);
    size_t before = test::count_open_fds();

    for (int round = 0; round < 3; ++round) {
        f.kill_backend();
        REQUIRE(f.run_until([&] { return !f.device->online(); }));
        f.restart_backend();
        REQUIRE(f.run_until([&] { return f.device->online(); }));
        f.on_backend(read_state);
    }

    CHECK(test::count_open_fds() == before);
}
