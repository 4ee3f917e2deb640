#include <doctest/doctest.h>
#include <unistd.h>

#include "base/asio_loop.h"
#include <chrono>

#include "devices/virtio/mmio_transport.h"
#include "devices/virtio/rng.h"
#include "fake_queue.h"
#include "mmio_driver.h"

using namespace kite;
using namespace kite::test;

TEST_CASE("rng behind the transport serves a buffer after QueueNotify and raises the irq eventfd") {
    HeapMemory mem(1 << 20);
    asio::io_context io;
    auto transport = *VirtioMmioTransport::create(std::make_shared<RngDevice>(), mem, io);
    MmioDriver driver(*transport);
    FakeQueue fq(mem, 16);
    driver.negotiate(driver.device_features());
    driver.setup_queue(0, fq.config());
    driver.driver_ok();
    io.restart();
    io.poll();
    fq.add_chain({{0x80000, 32, true}});

    driver.write32(VirtioMmioTransport::kQueueNotifyOffset, 0);
    io.restart();
    io.run_for(std::chrono::milliseconds(50));

    uint64_t irq = 0;
    CHECK(::read(transport->irq_fd(), &irq, sizeof irq) == sizeof irq);
    CHECK(fq.used_idx() == 1);
    CHECK(fq.used_len(0) == 32);
    CHECK(driver.read32(0x60) == 1);
}
