// Hardware-reduced ACPI power management registers, in I/O space:
//   port 0x600  SLEEP_CONTROL_REG (FADT), 1 byte: bits 2-4 SLP_TYP, bit 5 SLP_EN (write-only)
//   port 0x601  SLEEP_STATUS_REG  (FADT), 1 byte: bit 7 WAK_STS (write 1 to clear)
//   port 0x602  RESET_REG         (FADT), 1 byte: writing kAcpiResetValue resets the machine
// Register the device with `bus.insert(dev, AcpiPm::kBasePort, AcpiPm::kPortSpan)`.
//
// Linux powers off by writing SLP_TYP = the first value of the DSDT's \_S5_ package, with SLP_EN, to
// the sleep control register; it reboots by writing the FADT's RESET_VALUE to RESET_REG. The ACPI
// tables (vmm/arch/x86_64/acpi) take every number below from this header, so device and tables cannot disagree.
// The reset register lives next to the sleep registers rather than at the PC's 0xcf9 so that it can
// never collide with a PCI configuration mechanism at 0xcf8-0xcff.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "devices/bus_device.h"

namespace kite {

inline constexpr uint16_t kAcpiPmBasePort = 0x600;
inline constexpr uint16_t kAcpiPmPortCount = 3;
inline constexpr uint16_t kAcpiSleepControlPort = kAcpiPmBasePort + 0;
inline constexpr uint16_t kAcpiSleepStatusPort = kAcpiPmBasePort + 1;
inline constexpr uint16_t kAcpiResetPort = kAcpiPmBasePort + 2;
inline constexpr uint8_t kAcpiResetValue = 0x01;
// SLP_TYP for S5 (soft off): the DSDT declares Name(_S5_, Package(){kAcpiS5SleepType, 0, 0, 0}).
inline constexpr uint8_t kAcpiS5SleepType = 5;

inline constexpr uint8_t kAcpiSleepTypeShift = 2;
inline constexpr uint8_t kAcpiSleepTypeMask = 0x1c;
inline constexpr uint8_t kAcpiSleepEnable = 0x20;
inline constexpr uint8_t kAcpiWakeStatus = 0x80;

class AcpiPm final : public BusDevice {
public:
    static constexpr uint64_t kBasePort = kAcpiPmBasePort;
    static constexpr uint64_t kPortSpan = kAcpiPmPortCount;

    // Both callbacks run on the vCPU thread that wrote the register; they should post the request to
    // the VMM thread and return.
    AcpiPm(std::function<void()> on_poweroff, std::function<void()> on_reset);

    // Only 1-byte accesses reach the registers. Reads return 0 (no wake event is ever pending and
    // SLP_EN reads as 0); other sleep types than S5 are ignored (Kite has no S1-S4).
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

private:
    std::function<void()> on_poweroff_;
    std::function<void()> on_reset_;
};

}  // namespace kite
