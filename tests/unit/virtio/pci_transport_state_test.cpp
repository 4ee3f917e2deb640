// Snapshot state of a virtio-pci function: a restored function reads back the same registers, keeps its
// BAR placement and interrupt routing, and serves its queue; hostile blobs are refused untouched.
#include <doctest/doctest.h>

#include <chrono>
#include <vector>

#include "base/asio_loop.h"
#include "devices/virtio/pci_transport.h"
#include "devices/virtio/rng.h"
#include "fake_queue.h"
#include "pci_driver.h"

using namespace kite;
using namespace kite::test;

namespace {

constexpr uint64_t kBar = 0xc000'0000;
constexpr uint64_t kMovedBar = 0xc001'0000;  // where the driver moved BAR 0
constexpr uint32_t kGsi = 40;
constexpr uint64_t kBuffer = 0x80000;
constexpr size_t kConfigVectorOffset = 1 + 30 + 2;  // byte offsets into the version-1 blob
constexpr size_t kConfigSpaceOffset = kConfigVectorOffset + 3;

// An rng function on its own loop, hypervisor and guest memory view.
struct RngFunction {
    explicit RngFunction(HeapMemory& mem) : t(*VirtioPciTransport::create(std::make_shared<RngDevice>(), mem, io, host, kBar, kGsi)), driver(*t) {}
    ~RngFunction() {
        driver.status(0);  // reset the device while the loop is alive
        run();
    }
    void run() {
        io.restart();
        io.run_for(std::chrono::milliseconds(20));
    }
    // Adds a buffer, notifies queue 0 through BAR 0 and lets the rng fill it.
    uint16_t serve_one(FakeQueue& fq) {
        uint16_t head = fq.add_chain({{kBuffer + 0x100ull * fq.used_idx(), 32, true}});
        driver.set_bar(VirtioPciTransport::kNotifyOffset, 2, 0);
        run();
        return head;
    }
    // Everything the driver can read: config space, the common configuration of each queue, the MSI-X table.
    std::vector<uint64_t> registers() {
        std::vector<uint64_t> out;
        for (uint16_t at = 0; at < 256; at += 4) out.push_back(driver.cfg(at));
        for (uint16_t q = 0; q < 2; ++q) {
            driver.set_bar(0x16, 2, q);
            for (uint64_t at = 0; at < 0x3c; at += 4) out.push_back(driver.bar(at, 4));
        }
        driver.set_bar(0x16, 2, 0);
        for (uint64_t at = 0; at < 32; at += 8) out.push_back(driver.bar(VirtioPciTransport::kMsixTableOffset + at, 8));
        return out;
    }

    asio::io_context io;
    RecordingHost host;
    std::shared_ptr<VirtioPciTransport> t;
    PciDriver driver;
};

// The driver moved BAR 0, enabled MSI-X with queue 0 on vector 1 and config changes on vector 0 (masked,
// with a config change pending), and set the rng up; one buffer is served.
std::vector<uint8_t> saved_state(HeapMemory& mem, FakeQueue& fq) {
    RngFunction f(mem);
    f.driver.set_cfg(0x10, 4, kMovedBar);
    f.driver.enable_memory();
    f.driver.negotiate(virtio::kFeatureVersion1);  // no EVENT_IDX: every used buffer interrupts
    f.driver.setup_queue(0, fq.config());
    f.driver.set_bar(0x1a, 2, 1);
    f.driver.set_bar(0x10, 2, 0);
    f.driver.enable_msix();
    f.driver.program_vector(1, 0xfee01000, 0x4041, false);
    f.driver.program_vector(0, 0xfee00000, 0x4030, true);
    f.driver.status(f.driver.status() | virtio::kStatusDriverOk);
    f.run();
    f.serve_one(fq);
    f.t->signal_config_change();
    return f.t->save_state();
}

Result<void> restore_into_fresh(HeapMemory& mem, std::span<const uint8_t> state) {
    RngFunction fresh(mem);
    return fresh.t->restore_state(state);
}

}  // namespace

TEST_CASE("virtio-pci state round trip: the restored function reads back the same registers and saves the same") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 16);
    RngFunction before(mem);
    before.driver.set_cfg(0x10, 4, kMovedBar);
    before.driver.enable_memory();
    before.driver.negotiate(virtio::kFeatureVersion1);  // no EVENT_IDX: every used buffer interrupts
    before.driver.setup_queue(0, fq.config());
    before.driver.set_bar(0x1a, 2, 1);
    before.driver.enable_msix();
    before.driver.program_vector(1, 0xfee01000, 0x4041, false);
    before.driver.status(before.driver.status() | virtio::kStatusDriverOk);
    before.run();
    const auto state = before.t->save_state();
    RngFunction after(mem);

    auto ok = after.t->restore_state(state);

    REQUIRE(ok);
    CHECK(after.registers() == before.registers());
    CHECK(after.t->bar_address(0) == kMovedBar);
    CHECK(after.t->save_state() == state);
}

TEST_CASE("a restored virtio-pci function keeps its BAR placement and routing, serves and signals the same vector") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 16);
    const auto state = saved_state(mem, fq);
    RngFunction f(mem);

    REQUIRE(f.t->restore_state(state));
    f.run();
    const uint16_t head = f.serve_one(fq);

    CHECK(f.host.ioeventfds[f.t->kick_fd(0)] ==
          std::tuple(kMovedBar + VirtioPciTransport::kNotifyOffset, 0u, std::optional<uint64_t>()));
    CHECK(f.host.routes[kGsi + 1] == std::pair<uint64_t, uint32_t>(0xfee01000, 0x4041));
    CHECK(f.host.irqfds[f.t->call_fd(0)] == kGsi + 1);
    CHECK(f.host.irqfds.count(f.t->config_fd()) == 0);  // vector 0 is still masked
    CHECK(fq.used_idx() == 2);
    CHECK(fq.used_id(1) == head);
    CHECK(fq.used_len(1) == 32);
    CHECK(readable_count(f.t->call_fd(0)));
    CHECK(f.driver.bar(VirtioPciTransport::kMsixPbaOffset, 8) == 1);  // the config change still pending
}

TEST_CASE("virtio-pci state truncated at any length is refused and the function stays untouched") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 16);
    auto state = saved_state(mem, fq);
    RngFunction f(mem);
    int refused = 0;

    for (size_t n = 0; n < state.size(); ++n) refused += f.t->restore_state(std::span(state).first(n)) ? 0 : 1;
    state.push_back(0);
    refused += f.t->restore_state(state) ? 0 : 1;

    CHECK(refused == static_cast<int>(state.size()));
    CHECK(f.driver.status() == 0);
    CHECK(f.host.irqfds.empty());
    CHECK(f.t->bar_address(0) == std::nullopt);
}

TEST_CASE("virtio-pci state with a bad version, vector or config space, or for another device, is refused") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 16);
    const auto good = saved_state(mem, fq);
    auto version = good, vector = good, ids = good, device = good;
    version[0] = 2;
    vector[kConfigVectorOffset] = 7;               // the rng function has vectors 0 and 1
    ids[kConfigSpaceOffset] ^= 1;                  // vendor id
    device[1] = virtio::kIdBlock;                  // the head's device id

    CHECK(restore_into_fresh(mem, good));
    CHECK(restore_into_fresh(mem, version).error().message.find("version") != std::string::npos);
    CHECK(restore_into_fresh(mem, vector).error().message.find("vector 7") != std::string::npos);
    CHECK(restore_into_fresh(mem, ids).error().message.find("config space word at 0x0") != std::string::npos);
    CHECK(restore_into_fresh(mem, device).error().message.find("same devices in the same order") != std::string::npos);
}

TEST_CASE("virtio-pci state is refused by a function the driver already set up") {
    HeapMemory mem(1 << 20);
    FakeQueue fq(mem, 16);
    const auto state = saved_state(mem, fq);
    RngFunction busy(mem);
    busy.driver.status(virtio::kStatusAcknowledge);

    auto r = busy.t->restore_state(state);

    REQUIRE(!r);
    CHECK(r.error().message.find("already uses") != std::string::npos);
}
