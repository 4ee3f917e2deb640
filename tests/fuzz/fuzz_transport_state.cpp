// Fuzzer bytes become a transport state blob (as read from a snapshot file) restored into a virtio-mmio
// transport and into a virtio-pci function, each with a virtio-rng device: the first 4 KiB of input also
// seed guest memory, where restored queues may point and where the restored device reads its used.idx.
// After a restore that is accepted, the queue is notified and the device runs, then the driver resets it.
#include "base/asio_loop.h"
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "devices/virtio/mmio_transport.h"
#include "devices/virtio/pci_transport.h"
#include "devices/virtio/rng.h"
#include "memory/heap_memory.h"

#include <spdlog/spdlog.h>

using namespace kite;

namespace {

// A hypervisor that accepts every route and binding.
class NullHost : public PciInterruptHost {
public:
    Result<void> set_msi_route(uint32_t, uint64_t, uint32_t) override { return {}; }
    Result<void> bind_irqfd(int, uint32_t) override { return {}; }
    Result<void> unbind_irqfd(int, uint32_t) override { return {}; }
    Result<void> bind_ioeventfd(int, uint64_t, uint32_t, std::optional<uint64_t>) override { return {}; }
    Result<void> unbind_ioeventfd(int, uint64_t, uint32_t, std::optional<uint64_t>) override { return {}; }
};

void run(asio::io_context& io) {
    io.restart();
    io.poll();
}

void restore_pci(const uint8_t* data, size_t size, HeapMemory& memory) {
    asio::io_context io;
    NullHost host;
    auto function = *VirtioPciTransport::create(std::make_shared<RngDevice>(), memory, io, host, 0xc0000000, 24);
    if (!function->restore_state(std::span(data, size))) return;
    run(io);
    const uint8_t zero[2] = {0, 0};
    function->bar_write(0, VirtioPciTransport::kNotifyOffset, std::span<const uint8_t>(zero, 2));
    run(io);
    function->bar_write(0, 0x14, std::span<const uint8_t>(zero, 1));  // reset
    run(io);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const bool quiet = (spdlog::set_level(spdlog::level::off), true);  // guest-fault warnings slow fuzzing
    (void)quiet;
    HeapMemory memory(0x10000);
    memory.write(GuestAddress(0), std::as_bytes(std::span(data, std::min<size_t>(size, 4096))));
    asio::io_context io;
    restore_pci(data, size, memory);
    auto transport = *VirtioMmioTransport::create(std::make_shared<RngDevice>(), memory, io);
    if (!transport->restore_state(std::span(data, size))) return 0;
    io.restart();
    io.poll();
    transport->write(VirtioMmioTransport::kQueueNotifyOffset,
                     std::span<const uint8_t>(reinterpret_cast<const uint8_t*>("\0\0\0\0"), 4));
    io.restart();
    io.poll();
    transport->write(0x70, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>("\0\0\0\0"), 4));
    io.restart();
    io.poll();
    return 0;
}
