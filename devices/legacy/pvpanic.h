// pvpanic: how a guest kernel tells Kite it panicked, so that a CI job whose guest crashed ends with a
// status of its own instead of looking like a clean poweroff or reboot (QEMU's ISA pvpanic, at the same
// port; the stock kernel's pvpanic-mmio driver binds it through ACPI "QEMU0001" and takes port or MMIO).
//
//   I/O port 0x505, one byte. A read returns the events Kite supports: bit 0 PANICKED, bit 1
//   CRASH_LOADED. A 1-byte write reports events: PANICKED (the kernel panicked and will not boot a
//   crash kernel) or CRASH_LOADED (it panicked and is starting its kdump kernel, which should run).
// Other widths are ignored (reads return 0), so probing drivers cannot fake a panic.
// Register with `bus.insert(dev, Pvpanic::kPort, Pvpanic::kPortSpan)` on the PIO bus.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "devices/bus_device.h"

namespace kite {

class Pvpanic final : public BusDevice {
public:
    static constexpr uint64_t kPort = 0x505;
    static constexpr uint64_t kPortSpan = 1;
    static constexpr uint8_t kPanicked = 1 << 0;
    static constexpr uint8_t kCrashLoaded = 1 << 1;

    // Called on the vCPU thread that wrote the port with the supported event bits it wrote (never 0);
    // it should post what follows to the VMM thread and return.
    explicit Pvpanic(std::function<void(uint8_t events)> on_event);

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

private:
    std::function<void(uint8_t)> on_event_;
};

}  // namespace kite
