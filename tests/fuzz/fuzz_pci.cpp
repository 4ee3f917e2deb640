// Fuzzes the PCI root as a guest reaches it: configuration mechanism #1 on the port I/O bus and the BAR
// window on the MMIO bus, with one device in slot 1 whose config space has a 64-bit BAR 0 holding an
// MSI-X table and PBA (the capability's Message Control writes go to the Msix, as a transport does).
//
// Input: a sequence of 12-byte operations
//   byte 0: bit 0 target (0 ports, 1 window), bit 1 write (else read), bits 2-3 size index (1, 2, 4, 8),
//           bits 4-5 address mode:
//             ports:  0 raw (0xcf4 + offset % 16: also below and past the ports), 1-2 the same,
//                     3 latch register (offset & 0xfc) of slot (offset >> 10) % 2 first, then
//                       access 0xcfc + (offset >> 8) % 4
//             window: 0 window base + 24-bit offset, 1 BAR 0's current address (or the base) + offset %
//                     0x4100, 2 window base - 8 + offset % 16 (straddling the start), 3 MSI-X reset
//   bytes 1-3: offset (little-endian, 24 bits)
//   bytes 4-11: value (little-endian)
// The first 8 bytes are the pending bits (vector v pending iff bit v % 64 is set). The device starts with
// memory decode on, as a guest's PCI probe leaves it, so that the MSI-X table is reachable at once.
// Nothing may crash; every on_change state must be the vector's state at that moment and deliverable
// exactly when MSI-X is enabled, the function unmasked and the entry unmasked.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>

#include "devices/bus.h"
#include "devices/pci/config_space.h"
#include "devices/pci/msix.h"
#include "devices/pci/pci_device.h"
#include "devices/pci/pci_root.h"

namespace {

using namespace kite;
using namespace kite::pci;

constexpr uint64_t kWindowBase = 0xc000'0000;
constexpr uint64_t kWindowSize = 0x100'0000;
constexpr uint64_t kBarSize = 0x4000;
constexpr uint64_t kTableOffset = 0x2000;
constexpr uint64_t kPbaOffset = 0x3000;
constexpr uint16_t kVectors = 70;  // two PBA qwords

class FuzzDevice final : public PciDevice {
public:
    FuzzDevice(uint64_t bar_address, uint64_t pending_mask)
        : config_(DeviceIds{.vendor = 0x1af4, .device = 0x1041, .revision = 1, .class_code = 0x020000}),
          msix_(kVectors, [this](uint16_t v, const MsixVector& s) { check(v, s); },
                [pending_mask](uint16_t v) { return (pending_mask >> (v % 64)) & 1; }) {
        if (!config_.add_memory_bar(0, kBarSize, bar_address, true, false)) __builtin_trap();
        cap_ = config_.add_capability(kCapabilityMsix, msix_.capability(0, kTableOffset, 0, kPbaOffset),
                                      Msix::writable());
        if (cap_ == 0) __builtin_trap();
    }

    uint32_t config_read(uint16_t offset, unsigned size) override { return config_.read(offset, size); }
    void config_write(uint16_t offset, unsigned size, uint32_t value) override {
        config_.write(offset, size, value);
        const uint16_t control = cap_ + 2;
        if (offset < control + 2 && offset + size > control) msix_.control_written(config_.word(control));
    }
    void bar_read(unsigned bar, uint64_t offset, std::span<uint8_t> data) override {
        if (bar != 0 || offset >= kBarSize || kBarSize - offset < data.size()) __builtin_trap();
        if (offset >= kPbaOffset && offset < kPbaOffset + msix_.pba_size()) {
            msix_.pba_read(offset - kPbaOffset, data);
        } else if (offset >= kTableOffset && offset < kTableOffset + msix_.table_size()) {
            msix_.table_read(offset - kTableOffset, data);
        } else {
            std::memset(data.data(), 0, data.size());
        }
    }
    void bar_write(unsigned bar, uint64_t offset, std::span<const uint8_t> data) override {
        if (bar != 0 || offset >= kBarSize || kBarSize - offset < data.size()) __builtin_trap();
        if (offset >= kTableOffset && offset < kTableOffset + msix_.table_size())
            msix_.table_write(offset - kTableOffset, data);
    }
    std::optional<uint64_t> bar_address(unsigned bar) const override { return config_.bar_address(bar); }
    uint64_t bar_size(unsigned bar) const override { return config_.bar_size(bar); }

    void reset() { msix_.reset(); }

    void check_all() const {
        for (uint16_t v = 0; v < kVectors; ++v) check(v, msix_.state(v));
        if (config_.read(0, 4) != 0x1041'1af4) __builtin_trap();
    }

private:
    void check(uint16_t v, const MsixVector& s) const {
        if (v >= kVectors) __builtin_trap();
        std::array<uint8_t, 4> control{};
        msix_.table_read(v * kMsixEntrySize + 12, control);
        const bool deliverable = msix_.enabled() && !msix_.function_masked() && !(control[0] & 1);
        const MsixVector now = msix_.state(v);
        if (s.deliverable != deliverable || now.deliverable != s.deliverable || now.address != s.address ||
            now.data != s.data)
            __builtin_trap();
    }

    ConfigSpace config_;
    Msix msix_;
    uint8_t cap_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    constexpr size_t kOpSize = 12;
    constexpr std::array<size_t, 4> kSizes{1, 2, 4, 8};
    uint64_t pending_mask = 0;
    if (size >= 8) std::memcpy(&pending_mask, data, 8);

    PciRoot root(kWindowBase, kWindowSize);
    const auto bar = root.allocate_bar(kBarSize);
    if (!bar) __builtin_trap();
    auto device = std::make_shared<FuzzDevice>(*bar, pending_mask);
    if (root.add(device) != 1u) __builtin_trap();
    Bus pio;
    Bus mmio;
    if (!pio.insert(root.config_ports(), kConfigAddressPort, kConfigPortsLength)) __builtin_trap();
    if (!mmio.insert(root.mmio_window(), root.mmio_base(), root.mmio_size())) __builtin_trap();
    const std::array<uint8_t, 4> command_address{0x04, 0x08, 0x00, 0x80};  // 00:01.0 register 0x04
    const std::array<uint8_t, 2> memory_on{kCommandMemory, 0};
    if (!pio.write(kConfigAddressPort, command_address) || !pio.write(kConfigAddressPort + 4, memory_on))
        __builtin_trap();
    if (device->bar_address(0) != *bar) __builtin_trap();

    for (size_t pos = 8; pos + kOpSize <= size; pos += kOpSize) {
        const uint8_t* op = data + pos;
        const bool window = op[0] & 0x01;
        const bool is_write = op[0] & 0x02;
        const size_t len = kSizes[(op[0] >> 2) & 0x03];
        const unsigned mode = (op[0] >> 4) & 0x03;
        const uint32_t offset = op[1] | op[2] << 8 | op[3] << 16;
        std::array<uint8_t, 8> value{};
        std::memcpy(value.data(), op + 4, 8);

        uint64_t addr = 0;
        Bus* bus = window ? &mmio : &pio;
        if (!window) {
            addr = kConfigAddressPort - 4 + offset % 16;
            if (mode == 3) {
                const uint32_t latch = 0x8000'0000u | ((offset >> 10) & 1) << 11 | (offset & 0xfc);
                std::array<uint8_t, 4> b{};
                std::memcpy(b.data(), &latch, 4);
                (void)pio.write(kConfigAddressPort, std::span<const uint8_t>(b));
                addr = kConfigAddressPort + 4 + (offset >> 8) % 4;
            }
        } else if (mode == 0) {
            addr = kWindowBase + offset;
        } else if (mode == 1) {
            addr = device->bar_address(0).value_or(kWindowBase) + offset % 0x4100;
        } else if (mode == 2) {
            addr = kWindowBase - 8 + offset % 16;
        } else {
            device->reset();
            device->check_all();
            continue;
        }
        if (is_write) {
            (void)bus->write(addr, std::span<const uint8_t>(value.data(), len));
        } else {
            (void)bus->read(addr, std::span(value).first(len));
        }
        device->check_all();
    }
    return 0;
}
