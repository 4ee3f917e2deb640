// A PCI type-0 configuration space (PCI Local Bus 3.0, chapter 6): the 64-byte header, memory BARs and
// a capability list, 256 bytes in all (conventional config space, what port 0xcf8/0xcfc reaches).
//
// Writes go through per-byte write masks: the guest can change only the command register's Memory
// Space, Bus Master and Interrupt Disable bits, the BARs' address bits (the sizing protocol: write all
// ones, read back ~(size - 1) | flags), the Interrupt Line byte, and the bits of a capability the device
// declared writable. Status bits are read-only (Capabilities List is set once a capability exists).
//
// Not thread-safe: the owner serialises access (the PCI root holds its lock around every access).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>

namespace kite::pci {

inline constexpr uint16_t kConfigSpaceSize = 256;
inline constexpr uint16_t kCommandOffset = 0x04;
inline constexpr uint16_t kCommandMemory = 1 << 1;
inline constexpr uint16_t kCommandBusMaster = 1 << 2;
inline constexpr uint16_t kCommandIntxDisable = 1 << 10;
inline constexpr uint16_t kBar0Offset = 0x10;
inline constexpr unsigned kMaxBars = 6;

struct DeviceIds {
    uint16_t vendor = 0;
    uint16_t device = 0;
    uint8_t revision = 0;
    uint32_t class_code = 0;  // 24 bits: base class, sub-class, programming interface (0x060000: host bridge)
    uint16_t subsystem_vendor = 0;
    uint16_t subsystem = 0;
};

class ConfigSpace {
public:
    explicit ConfigSpace(const DeviceIds& ids);

    // A memory BAR of `size` bytes (a power of two, at least 16), at `address` (a multiple of `size`;
    // below 4 GiB unless `is64`). A 64-bit BAR takes `index` and `index + 1`. Set-up only: returns false
    // on a bad index, size or address, or a BAR slot already taken.
    bool add_memory_bar(unsigned index, uint64_t size, uint64_t address, bool is64, bool prefetchable);

    // Appends a capability: `id`, the next pointer, then `body`. `writable` (empty, or as long as `body`)
    // holds per-byte masks of the body bits the guest may change. Returns the capability's offset (4-byte
    // aligned, from 0x40 on), or 0 when it does not fit in the 256 bytes. Set-up only.
    uint8_t add_capability(uint8_t id, std::span<const uint8_t> body, std::span<const uint8_t> writable = {});

    // guest-controlled: offset and size. size is 1, 2 or 4 and the access must not cross a 4-byte
    // boundary; anything else reads all ones / is ignored. Offsets past 255 read all ones.
    uint32_t read(uint16_t offset, unsigned size) const;
    void write(uint16_t offset, unsigned size, uint32_t value);

    uint16_t command() const;
    // Where BAR `index` decodes: its address while the command register's Memory Space bit is set and
    // the BAR holds a real address (not the all-ones sizing pattern); nullopt otherwise.
    std::optional<uint64_t> bar_address(unsigned index) const;
    uint64_t bar_size(unsigned index) const;  // 0 for no BAR at `index`

    // Raw bytes, for the device's own view of its capabilities (read-only to the device: it changes
    // bytes with set_byte, e.g. for read-only status fields).
    uint8_t byte(uint16_t offset) const { return offset < kConfigSpaceSize ? bytes_[offset] : 0xff; }
    uint16_t word(uint16_t offset) const;
    void set_byte(uint16_t offset, uint8_t value);

private:
    uint32_t read_mask(uint16_t offset) const;  // the write mask of the dword at `offset` (4-aligned)

    std::array<uint8_t, kConfigSpaceSize> bytes_{};
    std::array<uint8_t, kConfigSpaceSize> writable_{};
    std::array<uint64_t, kMaxBars> bar_size_{};   // size of the BAR starting at the index; 0 otherwise
    std::array<bool, kMaxBars> bar_is64_{};
    std::array<bool, kMaxBars> bar_upper_{};      // the index is the upper half of a 64-bit BAR
    uint8_t last_capability_ = 0;                 // offset of the last capability, 0 for none
    uint16_t next_free_ = 0x40;                   // may reach 256: the space is full
};

}  // namespace kite::pci
