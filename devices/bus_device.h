// A device that answers port I/O or MMIO accesses. vCPU threads call read/write directly on an exit, so
// both must be cheap and never block; anything slow is posted to the VMM thread.
#pragma once

#include <cstdint>
#include <span>

namespace kite {

class BusDevice {
public:
    virtual ~BusDevice() = default;
    // offset is relative to the base the device was registered at; data.size() is 1, 2, 4 or 8.
    // guest-controlled: offset and size. Reads of unknown registers fill data with 0xff or 0.
    virtual void read(uint64_t offset, std::span<uint8_t> data) = 0;
    virtual void write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

}  // namespace kite
