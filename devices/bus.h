// A bus: a map from address ranges to devices. The VMM keeps one Bus for port I/O and one for MMIO and
// dispatches every PIO/MMIO exit through it on the vCPU thread that took the exit.
//
// Threading: insert() is called during set-up only, before any vCPU thread starts, and is not safe
// against concurrent lookups. After set-up the range list is never modified, so read()/write() are
// plain lookups in an immutable sorted vector: lock-free and safe from any number of vCPU threads.
// The devices themselves handle the concurrency of their own registers.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "base/error.h"
#include "devices/bus_device.h"

namespace kite {

class Bus {
public:
    // Registers `device` for [base, base + len). Fails on len 0, on a range that wraps around 2^64 and
    // on a range that overlaps one already registered. The same device may be registered at several
    // ranges; it then sees offsets relative to the base of the range that was hit.
    Result<void> insert(std::shared_ptr<BusDevice> device, uint64_t base, uint64_t len);

    // Dispatch an access to the device covering [addr, addr + data.size()) with offset = addr - base.
    // Returns false, and touches neither the device nor `data`, when no single device covers the whole
    // access (nothing there, an access that straddles the end of a range, or an empty access); the
    // caller then fills reads with 0xff and drops writes.
    // guest-controlled: addr and data.size().
    bool read(uint64_t addr, std::span<uint8_t> data) const;
    bool write(uint64_t addr, std::span<const uint8_t> data) const;

private:
    struct Range {
        uint64_t base;
        uint64_t len;
        std::shared_ptr<BusDevice> device;
    };
    // The range holding the whole access [addr, addr + size), or nullptr.
    const Range* find(uint64_t addr, uint64_t size) const;

    std::vector<Range> ranges_;  // sorted by base, pairwise disjoint
};

}  // namespace kite
