#include "devices/legacy/pvpanic.h"

#include <algorithm>
#include <utility>

namespace kite {

Pvpanic::Pvpanic(std::function<void(uint8_t)> on_event) : on_event_(std::move(on_event)) {}

void Pvpanic::read(uint64_t offset, std::span<uint8_t> data) {
    std::fill(data.begin(), data.end(), uint8_t{0});
    if (offset == 0 && data.size() == 1) data[0] = kPanicked | kCrashLoaded;
}

void Pvpanic::write(uint64_t offset, std::span<const uint8_t> data) {
    // guest-controlled: offset, width and the event bits (unknown bits are ignored)
    if (offset != 0 || data.size() != 1) return;
    if (uint8_t events = data[0] & (kPanicked | kCrashLoaded); events != 0) on_event_(events);
}

}  // namespace kite
