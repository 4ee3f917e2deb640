// Small helpers for error messages (g++ 12 has no <format>).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace kite::boot {

inline std::string hex(uint64_t value) {
    char text[24];
    std::snprintf(text, sizeof text, "%#llx", static_cast<unsigned long long>(value));
    return text;
}

// "[start, +size)"
inline std::string range_text(uint64_t start, uint64_t size) { return "[" + hex(start) + ", +" + hex(size) + ")"; }

}  // namespace kite::boot
