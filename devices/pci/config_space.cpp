#include "devices/pci/config_space.h"

#include <bit>

namespace kite::pci {

namespace {

constexpr uint16_t kVendorOffset = 0x00;
constexpr uint16_t kDeviceOffset = 0x02;
constexpr uint16_t kStatusOffset = 0x06;
constexpr uint16_t kRevisionOffset = 0x08;
constexpr uint16_t kClassCodeOffset = 0x09;  // programming interface, sub-class, base class
constexpr uint16_t kHeaderTypeOffset = 0x0e;
constexpr uint16_t kSubsystemVendorOffset = 0x2c;
constexpr uint16_t kSubsystemOffset = 0x2e;
constexpr uint16_t kCapabilitiesPointerOffset = 0x34;
constexpr uint16_t kInterruptLineOffset = 0x3c;

constexpr uint8_t kStatusCapabilitiesList = 1 << 4;
constexpr uint16_t kCommandWritable = kCommandMemory | kCommandBusMaster | kCommandIntxDisable;

constexpr uint32_t kBarMemory64 = 0b10 << 1;
constexpr uint32_t kBarPrefetchable = 1 << 3;
constexpr uint32_t kBarFlagBits = 0xf;  // memory/IO, type and prefetchable: never address bits

constexpr uint64_t k4GiB = uint64_t{1} << 32;

uint16_t bar_offset(unsigned index) { return static_cast<uint16_t>(kBar0Offset + 4 * index); }

bool valid_access(uint16_t offset, unsigned size) {
    return (size == 1 || size == 2 || size == 4) && offset < kConfigSpaceSize && (offset % 4) + size <= 4;
}

}  // namespace

ConfigSpace::ConfigSpace(const DeviceIds& ids) {
    auto put16 = [this](uint16_t offset, uint16_t value) {
        bytes_[offset] = static_cast<uint8_t>(value);
        bytes_[offset + 1] = static_cast<uint8_t>(value >> 8);
    };
    put16(kVendorOffset, ids.vendor);
    put16(kDeviceOffset, ids.device);
    bytes_[kRevisionOffset] = ids.revision;
    bytes_[kClassCodeOffset] = static_cast<uint8_t>(ids.class_code);
    bytes_[kClassCodeOffset + 1] = static_cast<uint8_t>(ids.class_code >> 8);
    bytes_[kClassCodeOffset + 2] = static_cast<uint8_t>(ids.class_code >> 16);
    bytes_[kHeaderTypeOffset] = 0;  // type 0, single function
    put16(kSubsystemVendorOffset, ids.subsystem_vendor);
    put16(kSubsystemOffset, ids.subsystem);

    writable_[kCommandOffset] = static_cast<uint8_t>(kCommandWritable);
    writable_[kCommandOffset + 1] = static_cast<uint8_t>(kCommandWritable >> 8);
    writable_[kInterruptLineOffset] = 0xff;  // Interrupt Pin (0x3d) stays 0: no INTx
}

bool ConfigSpace::add_memory_bar(unsigned index, uint64_t size, uint64_t address, bool is64, bool prefetchable) {
    const unsigned slots = is64 ? 2 : 1;
    if (index >= kMaxBars || kMaxBars - index < slots) return false;
    if (size < 16 || !std::has_single_bit(size) || address % size != 0) return false;
    // A 32-bit BAR's address bits are 31:4, so it holds at most 2 GiB and must end below 4 GiB.
    if (!is64 && (size > k4GiB / 2 || address >= k4GiB || k4GiB - address < size)) return false;
    if (is64 && address > UINT64_MAX - (size - 1)) return false;
    for (unsigned i = index; i < index + slots; ++i)
        if (bar_size_[i] != 0 || bar_upper_[i]) return false;

    bar_size_[index] = size;
    bar_is64_[index] = is64;
    if (is64) bar_upper_[index + 1] = true;

    const uint32_t flags = (is64 ? kBarMemory64 : 0) | (prefetchable ? kBarPrefetchable : 0);
    const uint32_t low_mask = static_cast<uint32_t>(~(size - 1)) & ~kBarFlagBits;
    const uint32_t low = static_cast<uint32_t>(address) | flags;
    for (unsigned b = 0; b < 4; ++b) {
        bytes_[bar_offset(index) + b] = static_cast<uint8_t>(low >> (8 * b));
        writable_[bar_offset(index) + b] = static_cast<uint8_t>(low_mask >> (8 * b));
    }
    if (is64) {
        const uint32_t high_mask = static_cast<uint32_t>(~((size - 1) >> 32));
        const uint32_t high = static_cast<uint32_t>(address >> 32);
        for (unsigned b = 0; b < 4; ++b) {
            bytes_[bar_offset(index + 1) + b] = static_cast<uint8_t>(high >> (8 * b));
            writable_[bar_offset(index + 1) + b] = static_cast<uint8_t>(high_mask >> (8 * b));
        }
    }
    return true;
}

uint8_t ConfigSpace::add_capability(uint8_t id, std::span<const uint8_t> body, std::span<const uint8_t> writable) {
    if (!writable.empty() && writable.size() != body.size()) return 0;
    const uint16_t offset = next_free_;
    if (offset >= kConfigSpaceSize || body.size() > size_t{kConfigSpaceSize} - offset - 2) return 0;

    bytes_[offset] = id;
    bytes_[offset + 1] = 0;  // end of the list until another capability follows
    for (size_t i = 0; i < body.size(); ++i) {
        bytes_[offset + 2 + i] = body[i];
        writable_[offset + 2 + i] = writable.empty() ? 0 : writable[i];
    }
    const uint16_t link = last_capability_ == 0 ? kCapabilitiesPointerOffset : last_capability_ + 1;
    bytes_[link] = static_cast<uint8_t>(offset);
    bytes_[kStatusOffset] |= kStatusCapabilitiesList;

    last_capability_ = static_cast<uint8_t>(offset);
    next_free_ = static_cast<uint16_t>((offset + 2 + body.size() + 3) & ~size_t{3});
    return static_cast<uint8_t>(offset);
}

uint32_t ConfigSpace::read(uint16_t offset, unsigned size) const {
    if (!valid_access(offset, size)) return 0xffff'ffff;
    uint32_t value = 0;
    for (unsigned i = 0; i < size; ++i) value |= uint32_t{bytes_[offset + i]} << (8 * i);
    return value;
}

void ConfigSpace::write(uint16_t offset, unsigned size, uint32_t value) {
    if (!valid_access(offset, size)) return;
    for (unsigned i = 0; i < size; ++i) {
        const uint8_t mask = writable_[offset + i];
        const auto v = static_cast<uint8_t>(value >> (8 * i));
        bytes_[offset + i] = static_cast<uint8_t>((bytes_[offset + i] & ~mask) | (v & mask));
    }
}

uint16_t ConfigSpace::command() const { return word(kCommandOffset); }

uint16_t ConfigSpace::word(uint16_t offset) const {
    if (offset >= kConfigSpaceSize - 1) return 0xffff;
    return static_cast<uint16_t>(bytes_[offset] | bytes_[offset + 1] << 8);
}

void ConfigSpace::set_byte(uint16_t offset, uint8_t value) {
    if (offset < kConfigSpaceSize) bytes_[offset] = value;
}

uint64_t ConfigSpace::bar_size(unsigned index) const { return index < kMaxBars ? bar_size_[index] : 0; }

std::optional<uint64_t> ConfigSpace::bar_address(unsigned index) const {
    if (index >= kMaxBars || bar_size_[index] == 0 || !(command() & kCommandMemory)) return std::nullopt;
    // The address bits are exactly the writable bits; a half whose address bits are all ones holds the
    // sizing pattern (a 64-bit BAR is sized one half at a time, so either half counts).
    auto half = [this](unsigned i) -> std::optional<uint32_t> {
        const uint16_t at = bar_offset(i);
        const uint32_t value = read(at, 4);
        const uint32_t mask = read_mask(at);
        if (mask != 0 && (value & mask) == mask) return std::nullopt;
        return value & mask;
    };
    const auto low = half(index);
    if (!low) return std::nullopt;
    if (!bar_is64_[index]) return *low;
    const auto high = half(index + 1);
    if (!high) return std::nullopt;
    return uint64_t{*high} << 32 | *low;
}

uint32_t ConfigSpace::read_mask(uint16_t offset) const {
    uint32_t mask = 0;
    for (unsigned i = 0; i < 4; ++i) mask |= uint32_t{writable_[offset + i]} << (8 * i);
    return mask;
}

}  // namespace kite::pci
