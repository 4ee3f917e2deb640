// Fuzzer bytes become a sequence of config space and BAR 0 accesses (offset, width, value) against a
// virtio-pci transport with a virtio-rng device, with the VMM loop run between accesses so activations,
// resets and the rng's interrupts happen. The hypervisor is a stand-in that checks the transport's
// bookkeeping: every irqfd it unbinds was bound to that GSI, every ioeventfd it unbinds is the one bound.
// The first 4 KiB of input also seed guest memory, where the queues may point.
#include <spdlog/spdlog.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <tuple>

#include "base/asio_loop.h"
#include "devices/virtio/pci_transport.h"
#include "devices/virtio/rng.h"
#include "memory/heap_memory.h"

using namespace kite;

namespace {

class Host : public PciInterruptHost {
public:
    Result<void> set_msi_route(uint32_t gsi, uint64_t, uint32_t) override {
        if (gsi < kFirstGsi || gsi >= kFirstGsi + 2) std::abort();  // rng: one queue + config
        return {};
    }
    Result<void> bind_irqfd(int fd, uint32_t gsi) override {
        if (irqfds.count(fd)) std::abort();  // bound twice
        irqfds[fd] = gsi;
        return {};
    }
    Result<void> unbind_irqfd(int fd, uint32_t gsi) override {
        auto it = irqfds.find(fd);
        if (it == irqfds.end() || it->second != gsi) std::abort();
        irqfds.erase(it);
        return {};
    }
    Result<void> bind_ioeventfd(int fd, uint64_t address, uint32_t length, std::optional<uint64_t> datamatch) override {
        if (ioeventfds.count(fd)) std::abort();
        ioeventfds[fd] = {address, length, datamatch};
        return {};
    }
    Result<void> unbind_ioeventfd(int fd, uint64_t address, uint32_t length, std::optional<uint64_t> datamatch) override {
        auto it = ioeventfds.find(fd);
        if (it == ioeventfds.end() || it->second != std::tuple(address, length, datamatch)) std::abort();
        ioeventfds.erase(it);
        return {};
    }
    static constexpr uint32_t kFirstGsi = 24;
    std::map<int, uint32_t> irqfds;
    std::map<int, std::tuple<uint64_t, uint32_t, std::optional<uint64_t>>> ioeventfds;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const bool quiet = (spdlog::set_level(spdlog::level::off), true);  // guest-fault warnings slow fuzzing
    (void)quiet;
    HeapMemory memory(0x10000);
    memory.write(GuestAddress(0), std::as_bytes(std::span(data, std::min<size_t>(size, 4096))));
    asio::io_context io;
    Host host;
    auto transport = *VirtioPciTransport::create(std::make_shared<RngDevice>(), memory, io, host, 0xc0000000,
                                                 Host::kFirstGsi);

    struct Access {
        uint8_t kind;       // bit 0: write; bits 1-2: width 1, 2, 4, 8; bit 3: config space (else BAR 0)
        uint8_t offset[2];  // config: low byte; BAR: 0x0000-0x7fff, with the upper bits picking a region
        uint8_t value[8];
    } access;
    for (size_t at = 0; at + sizeof access <= size; at += sizeof access) {
        std::memcpy(&access, data + at, sizeof access);
        const unsigned width = 1u << ((access.kind >> 1) & 3);
        const uint16_t offset = static_cast<uint16_t>(access.offset[0] | (access.offset[1] << 8));
        uint32_t value32 = 0;
        std::memcpy(&value32, access.value, 4);
        if (access.kind & 8) {
            // The PCI root passes 1, 2 or 4 bytes inside one dword of the 256.
            const unsigned w = width == 8 ? 4 : width;
            const uint16_t reg = static_cast<uint16_t>((offset & 0xff) & ~(w - 1));
            if (access.kind & 1) transport->config_write(reg, w, value32);
            else (void)transport->config_read(reg, w);
        } else {
            const uint64_t bar_offset = (offset % VirtioPciTransport::kBar0Size) & ~uint64_t{width - 1};
            if (access.kind & 1) transport->bar_write(0, bar_offset, std::span<const uint8_t>(access.value, width));
            else transport->bar_read(0, bar_offset, std::span<uint8_t>(access.value, width));
        }
        if (access.kind & 0x10) transport->signal_config_change();
        io.restart();
        io.poll();
    }
    const uint8_t zero = 0;
    transport->bar_write(0, 0x14, std::span<const uint8_t>(&zero, 1));  // reset
    io.restart();
    io.poll();
    return 0;
}
