// A device on Kite's PCI bus, as the PCI root sees it: a configuration space and memory BARs.
//
// Threads: config_read/config_write run on vCPU threads under the PCI root's lock (one config access at
// a time, machine-wide); bar_read/bar_write run on vCPU threads concurrently and the device guards its
// own state; bar_address/bar_size are called from any thread and must not block.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

namespace kite::pci {

class PciDevice {
public:
    virtual ~PciDevice() = default;
    // guest-controlled: offset < 256 and size 1, 2 or 4, not crossing a 4-byte boundary (the root
    // checks this before calling).
    virtual uint32_t config_read(uint16_t offset, unsigned size) = 0;
    virtual void config_write(uint16_t offset, unsigned size, uint32_t value) = 0;
    // guest-controlled: offset + data.size() <= bar_size(bar) (the root checks), size 1, 2, 4 or 8.
    virtual void bar_read(unsigned bar, uint64_t offset, std::span<uint8_t> data) = 0;
    virtual void bar_write(unsigned bar, uint64_t offset, std::span<const uint8_t> data) = 0;
    // Where memory BAR `bar` decodes now (see ConfigSpace::bar_address), and its size (0: no BAR).
    virtual std::optional<uint64_t> bar_address(unsigned bar) const = 0;
    virtual uint64_t bar_size(unsigned bar) const = 0;
};

}  // namespace kite::pci
