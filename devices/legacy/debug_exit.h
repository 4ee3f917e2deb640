// The debug-exit port: a guest chooses the exit status of Kite itself.
//
//   A 1-byte write of value v to I/O port 0x501 ends the VM, and `kite` exits with status v.
//
// This is for tests and CI: a guest test runner reports its result with, for example,
//   outb(0x501, failures ? 1 : 0)         (C, from a freestanding guest or a kernel module), or
//   printf '\x00' | dd of=/dev/port bs=1 seek=$((0x501)) count=1   (from a Linux shell as root)
// so that `kite run ci.yaml && echo passed` works. Unlike QEMU's isa-debug-exit (which exits with
// (v << 1) | 1), the value is used unchanged, so a guest can also report success with 0.
// Wider writes and reads do nothing (reads return 0xff), so probing drivers cannot end the VM.
// Register with `bus.insert(dev, DebugExit::kPort, DebugExit::kPortSpan)` on the PIO bus.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "devices/bus_device.h"

namespace kite {

inline constexpr uint16_t kDebugExitPort = 0x501;

class DebugExit final : public BusDevice {
public:
    static constexpr uint64_t kPort = kDebugExitPort;
    static constexpr uint64_t kPortSpan = 1;

    // Called on the vCPU thread that wrote the port, with the requested exit status; it should post
    // the exit to the VMM thread and return.
    explicit DebugExit(std::function<void(uint8_t status)> on_exit);

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

private:
    std::function<void(uint8_t)> on_exit_;
};

}  // namespace kite
