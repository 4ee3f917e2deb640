#include "devices/pci/msix.h"

#include <algorithm>

namespace kite::pci {

namespace {

constexpr uint32_t kVectorMasked = 1;  // Vector Control bit 0; the other bits are reserved (read 0)

uint32_t load32(std::span<const uint8_t> data, size_t at) {
    uint32_t v = 0;
    for (size_t i = 0; i < 4; ++i) v |= uint32_t{data[at + i]} << (8 * i);
    return v;
}

void store32(std::span<uint8_t> data, size_t at, uint32_t v) {
    for (size_t i = 0; i < 4; ++i) data[at + i] = static_cast<uint8_t>(v >> (8 * i));
}

void append32(std::vector<uint8_t>& out, uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// A 4- or 8-byte access aligned to its size, wholly inside [0, limit).
bool valid_access(uint64_t offset, size_t size, uint64_t limit) {
    return (size == 4 || size == 8) && offset % size == 0 && offset < limit && limit - offset >= size;
}

}  // namespace

Msix::Msix(uint16_t vectors, ChangeFn on_change, PendingFn pending)
    : entries_(std::clamp(vectors, uint16_t{1}, kMsixMaxVectors)),
      on_change_(std::move(on_change)),
      pending_(std::move(pending)) {}

std::vector<uint8_t> Msix::capability(uint8_t table_bar, uint32_t table_offset, uint8_t pba_bar,
                                      uint32_t pba_offset) const {
    std::vector<uint8_t> body;
    const uint16_t control = static_cast<uint16_t>(vectors() - 1);  // Table Size is N - 1
    body.push_back(static_cast<uint8_t>(control));
    body.push_back(static_cast<uint8_t>(control >> 8));
    append32(body, (table_offset & ~7u) | (table_bar & 7u));
    append32(body, (pba_offset & ~7u) | (pba_bar & 7u));
    return body;
}

std::vector<uint8_t> Msix::writable() {
    std::vector<uint8_t> mask(10, 0);
    mask[1] = static_cast<uint8_t>((kMsixControlEnable | kMsixControlFunctionMask) >> 8);
    return mask;
}

void Msix::control_written(uint16_t control) {
    enabled_ = (control & kMsixControlEnable) != 0;
    function_masked_ = (control & kMsixControlFunctionMask) != 0;
    notify_all();
}

void Msix::table_read(uint64_t offset, std::span<uint8_t> data) const {
    // guest-controlled: offset, data.size()
    if (!valid_access(offset, data.size(), table_size())) {
        std::fill(data.begin(), data.end(), uint8_t{0});
        return;
    }
    for (size_t done = 0; done < data.size(); done += 4) {
        const uint64_t at = offset + done;
        const Entry& e = entries_[at / kMsixEntrySize];
        const uint32_t words[4] = {e.address_low, e.address_high, e.data, e.control};
        store32(data, done, words[(at % kMsixEntrySize) / 4]);
    }
}

void Msix::table_write(uint64_t offset, std::span<const uint8_t> data) {
    // guest-controlled: offset, data.size(), data
    if (!valid_access(offset, data.size(), table_size())) return;
    const auto vector = static_cast<uint16_t>(offset / kMsixEntrySize);
    Entry& e = entries_[vector];
    for (size_t done = 0; done < data.size(); done += 4) {
        const uint32_t value = load32(data, done);
        switch (((offset + done) % kMsixEntrySize) / 4) {
        case 0: e.address_low = value; break;
        case 1: e.address_high = value; break;
        case 2: e.data = value; break;
        default: e.control = value & kVectorMasked; break;
        }
    }
    notify(vector);
}

void Msix::pba_read(uint64_t offset, std::span<uint8_t> data) const {
    // guest-controlled: offset, data.size()
    std::fill(data.begin(), data.end(), uint8_t{0});
    if (!valid_access(offset, data.size(), pba_size()) || !pending_) return;
    for (size_t byte = 0; byte < data.size(); ++byte) {
        for (unsigned bit = 0; bit < 8; ++bit) {
            const uint64_t vector = (offset + byte) * 8 + bit;
            if (vector < vectors() && pending_(static_cast<uint16_t>(vector)))
                data[byte] |= static_cast<uint8_t>(1u << bit);
        }
    }
}

MsixVector Msix::state(uint16_t vector) const {
    if (vector >= vectors()) return {};
    const Entry& e = entries_[vector];
    return MsixVector{
        .address = uint64_t{e.address_high} << 32 | e.address_low,
        .data = e.data,
        .deliverable = enabled_ && !function_masked_ && !(e.control & kVectorMasked),
    };
}

void Msix::reset() {
    std::vector<uint16_t> were_deliverable;
    for (uint16_t v = 0; v < vectors(); ++v)
        if (state(v).deliverable) were_deliverable.push_back(v);
    enabled_ = false;
    function_masked_ = false;
    std::fill(entries_.begin(), entries_.end(), Entry{});
    for (uint16_t v : were_deliverable) notify(v);
}

void Msix::notify(uint16_t vector) const {
    if (on_change_) on_change_(vector, state(vector));
}

void Msix::notify_all() const {
    for (uint16_t v = 0; v < vectors(); ++v) notify(v);
}

}  // namespace kite::pci
