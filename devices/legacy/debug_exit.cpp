#include "devices/legacy/debug_exit.h"

#include <algorithm>
#include <utility>

namespace kite {

DebugExit::DebugExit(std::function<void(uint8_t)> on_exit) : on_exit_(std::move(on_exit)) {}

void DebugExit::read(uint64_t, std::span<uint8_t> data) { std::fill(data.begin(), data.end(), 0xff); }

void DebugExit::write(uint64_t offset, std::span<const uint8_t> data) {
    // guest-controlled: offset, data.size() and the status value
    if (offset != 0 || data.size() != 1) return;
    on_exit_(data[0]);
}

}  // namespace kite
