#include "devices/legacy/ioapic.h"

#include <fmt/format.h>

#include <algorithm>
#include <string>

namespace kite {

namespace {

constexpr uint32_t kIdRegister = 0x00;
constexpr uint32_t kVersionRegister = 0x01;
constexpr uint32_t kArbitrationRegister = 0x02;
constexpr uint32_t kIdMask = 0x0f00'0000;

// Writable bits of an entry: vector, delivery mode, destination mode, polarity, trigger mode, mask in the
// low word; extended destination ID and destination in the high word. Delivery status (12) and Remote
// IRR (14) are read-only and stay 0.
constexpr uint64_t kWritableBits = 0xfffe'0000'0001'afffull;
constexpr uint64_t kResetEntry = Ioapic::kMaskBit;

constexpr uint64_t kMsiBaseAddress = 0xfee0'0000;
constexpr uint8_t kStateVersion = 1;
constexpr size_t kStateSize = 1 + 4 + 4 + Ioapic::kPins * 8;

uint32_t load32(std::span<const uint8_t> data) {
    uint32_t v = 0;
    for (size_t i = 0; i < std::min<size_t>(data.size(), 4); ++i) v |= uint32_t{data[i]} << (8 * i);
    return v;
}

void store32(std::span<uint8_t> data, uint32_t v) {
    std::fill(data.begin(), data.end(), uint8_t{0});
    for (size_t i = 0; i < std::min<size_t>(data.size(), 4); ++i) data[i] = static_cast<uint8_t>(v >> (8 * i));
}

void append_le(std::vector<uint8_t>& out, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

uint64_t read_le(std::span<const uint8_t> in, size_t at, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= uint64_t{in[at + i]} << (8 * i);
    return v;
}

}  // namespace

Ioapic::Ioapic(std::function<void(const Routes&)> apply) : apply_(std::move(apply)) { entries_.fill(kResetEntry); }

std::array<uint64_t, Ioapic::kPins> Ioapic::entries() const {
    std::lock_guard lock(mutex_);
    return entries_;
}

std::string Ioapic::describe() const {
    const auto all = entries();
    std::string out = "I/O APIC:";
    for (uint32_t pin = 0; pin < kPins; ++pin) {
        auto m = message_of(all[pin]);
        if (!m) continue;
        out += fmt::format(" pin {} -> vector {:#x}, {} destination {:#x};", pin, all[pin] & 0xff,
                           (all[pin] & (1u << 11)) ? "logical" : "physical", all[pin] >> 56);
    }
    return out.back() == ':' ? out + " every pin masked" : out;
}

std::optional<MsiMessage> Ioapic::message_of(uint64_t entry) {
    if (entry & kMaskBit) return std::nullopt;
    const uint64_t destination = entry >> 56;
    const uint64_t extended_destination = (entry >> 49) & 0x7f;
    const uint64_t logical = (entry >> 11) & 1;
    MsiMessage m;
    m.address = kMsiBaseAddress | destination << 12 | extended_destination << 5 | logical << 2;
    m.data = static_cast<uint32_t>(entry & 0x7ff);  // vector (0-7) and delivery mode (8-10): edge, asserted
    return m;
}

void Ioapic::read(uint64_t offset, std::span<uint8_t> data) {
    std::lock_guard lock(mutex_);
    switch (offset) {
    case kRegisterSelect: store32(data, select_); break;
    case kRegisterWindow: store32(data, read_indirect_locked()); break;
    default: store32(data, 0); break;
    }
}

void Ioapic::write(uint64_t offset, std::span<const uint8_t> data) {
    std::lock_guard lock(mutex_);
    switch (offset) {
    case kRegisterSelect: select_ = load32(data) & 0xff; break;
    case kRegisterWindow:
        if (data.size() == 4) write_indirect_locked(load32(data));  // the window takes whole words only
        break;
    default: break;
    }
}

std::optional<uint32_t> Ioapic::selected_pin_locked() const {
    if (select_ < kFirstRedirectionRegister || select_ >= kFirstRedirectionRegister + 2 * kPins) return std::nullopt;
    return (select_ - kFirstRedirectionRegister) / 2;
}

uint32_t Ioapic::read_indirect_locked() const {
    switch (select_) {
    case kIdRegister:
    case kArbitrationRegister: return id_;
    case kVersionRegister: return kVersion;
    default: break;
    }
    const auto pin = selected_pin_locked();
    if (!pin) return 0xffff'ffff;
    const uint64_t entry = entries_[*pin];
    return static_cast<uint32_t>((select_ & 1) ? entry >> 32 : entry);
}

void Ioapic::write_indirect_locked(uint32_t value) {
    if (select_ == kIdRegister) {
        id_ = value & kIdMask;
        return;
    }
    const auto pin = selected_pin_locked();
    if (!pin) return;
    uint64_t& entry = entries_[*pin];
    const uint64_t half = (select_ & 1) ? uint64_t{value} << 32 : uint64_t{value};
    const uint64_t keep = (select_ & 1) ? 0xffff'ffffull : 0xffff'ffff'0000'0000ull;
    entry = ((entry & keep) | half) & kWritableBits;
    apply_routes_locked(/*always=*/false);
}

void Ioapic::apply_routes_locked(bool always) {
    Routes next;
    for (uint32_t pin = 0; pin < kPins; ++pin) next[pin] = message_of(entries_[pin]);
    if (!always && next == routes_) return;
    routes_ = next;
    apply_(routes_);
}

std::vector<uint8_t> Ioapic::save_state() const {
    std::lock_guard lock(mutex_);
    std::vector<uint8_t> out{kStateVersion};
    append_le(out, id_, 4);
    append_le(out, select_, 4);
    for (uint64_t entry : entries_) append_le(out, entry, 8);
    return out;
}

Result<void> Ioapic::restore_state(std::span<const uint8_t> bytes) {
    if (bytes.size() != kStateSize)
        return fail("I/O APIC state: " + std::to_string(bytes.size()) + " bytes, expected " + std::to_string(kStateSize));
    if (bytes[0] != kStateVersion) return fail("I/O APIC state: unsupported version " + std::to_string(bytes[0]));
    std::lock_guard lock(mutex_);
    id_ = static_cast<uint32_t>(read_le(bytes, 1, 4)) & kIdMask;
    select_ = static_cast<uint32_t>(read_le(bytes, 5, 4)) & 0xff;
    for (uint32_t pin = 0; pin < kPins; ++pin) entries_[pin] = read_le(bytes, 9 + 8 * size_t{pin}, 8) & kWritableBits;
    apply_routes_locked(/*always=*/true);
    return {};
}

}  // namespace kite
