#include "devices/legacy/acpi_pm.h"

#include <algorithm>
#include <utility>

namespace kite {

AcpiPm::AcpiPm(std::function<void()> on_poweroff, std::function<void()> on_reset)
    : on_poweroff_(std::move(on_poweroff)), on_reset_(std::move(on_reset)) {}

void AcpiPm::read(uint64_t offset, std::span<uint8_t> data) {
    // guest-controlled: offset and data.size()
    uint8_t fill = (data.size() == 1 && offset < kAcpiPmPortCount) ? 0x00 : 0xff;
    std::fill(data.begin(), data.end(), fill);
}

void AcpiPm::write(uint64_t offset, std::span<const uint8_t> data) {
    // guest-controlled: offset, data.size() and the value
    if (data.size() != 1) return;
    uint8_t value = data[0];
    switch (offset + kAcpiPmBasePort) {
    case kAcpiSleepControlPort: {
        uint8_t sleep_type = (value & kAcpiSleepTypeMask) >> kAcpiSleepTypeShift;
        if ((value & kAcpiSleepEnable) && sleep_type == kAcpiS5SleepType) on_poweroff_();
        break;
    }
    case kAcpiSleepStatusPort:  // WAK_STS is never set, so clearing it has nothing to do
        break;
    case kAcpiResetPort:
        if (value == kAcpiResetValue) on_reset_();
        break;
    default:
        break;
    }
}

}  // namespace kite
