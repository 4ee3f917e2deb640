// The MSI-X capability, vector table and pending bit array (PCI Local Bus 3.0, section 6.8.2).
//
// The device puts the capability into its ConfigSpace (capability(), writable()) and maps the table
// and the PBA into one of its BARs; the PCI transport forwards config writes to the capability's
// Message Control word (control_written) and BAR accesses to table_read/table_write/pba_read.
//
// A vector is *deliverable* while MSI-X is enabled, the function is not masked and the vector's own mask
// bit is clear. Whenever a vector's deliverable state, address or data may have changed, on_change is
// called with the vector's index and state (also when nothing changed: callers compare). A masked vector
// keeps its events pending in the caller (an eventfd that is not bound to KVM); pba_read asks `pending`
// for each vector's bit.
//
// Thread-safety: none; the owner serialises calls (vCPU threads, under the transport's lock).
// on_change runs inside the call that caused it.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace kite::pci {

inline constexpr uint8_t kCapabilityMsix = 0x11;
inline constexpr uint16_t kMsixMaxVectors = 2048;
inline constexpr uint16_t kMsixControlEnable = 1 << 15;
inline constexpr uint16_t kMsixControlFunctionMask = 1 << 14;
inline constexpr uint32_t kMsixEntrySize = 16;

struct MsixVector {
    uint64_t address = 0;
    uint32_t data = 0;
    bool deliverable = false;
};

class Msix {
public:
    using ChangeFn = std::function<void(uint16_t vector, const MsixVector& state)>;
    using PendingFn = std::function<bool(uint16_t vector)>;

    // 1..kMsixMaxVectors vectors; every entry starts masked (as after reset), MSI-X disabled.
    Msix(uint16_t vectors, ChangeFn on_change, PendingFn pending);

    uint16_t vectors() const { return static_cast<uint16_t>(entries_.size()); }
    uint32_t table_size() const { return vectors() * kMsixEntrySize; }
    uint32_t pba_size() const { return ((vectors() + 63) / 64) * 8; }

    // The capability body after the id and next bytes (10 bytes: Message Control, Table Offset/BIR,
    // PBA Offset/BIR) and its write mask (only Enable and Function Mask are writable).
    // Offsets must be 8-byte aligned; bar < 6.
    std::vector<uint8_t> capability(uint8_t table_bar, uint32_t table_offset, uint8_t pba_bar,
                                    uint32_t pba_offset) const;
    static std::vector<uint8_t> writable();

    // The guest wrote the capability's Message Control word: `control` is its value after the write
    // (the config space applied the mask).
    void control_written(uint16_t control);
    bool enabled() const { return enabled_; }
    bool function_masked() const { return function_masked_; }

    // guest-controlled: offset (within the table / PBA) and size. 4- and 8-byte accesses aligned to
    // their size; anything else reads zeroes / is ignored. The PBA is read-only.
    void table_read(uint64_t offset, std::span<uint8_t> data) const;
    void table_write(uint64_t offset, std::span<const uint8_t> data);
    void pba_read(uint64_t offset, std::span<uint8_t> data) const;

    MsixVector state(uint16_t vector) const;  // vector < vectors()

    // Back to power-on state: disabled, unmasked function, every entry zero and masked. Calls on_change
    // for each vector that was deliverable.
    void reset();

private:
    struct Entry {
        uint32_t address_low = 0;
        uint32_t address_high = 0;
        uint32_t data = 0;
        uint32_t control = 1;  // bit 0: masked
    };
    void notify(uint16_t vector) const;
    void notify_all() const;

    std::vector<Entry> entries_;
    ChangeFn on_change_;
    PendingFn pending_;
    bool enabled_ = false;
    bool function_masked_ = false;
};

}  // namespace kite::pci
