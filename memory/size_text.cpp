#include "memory/size_text.h"

#include <cstdio>
#include <iterator>

namespace kite {

std::string size_text(uint64_t bytes) {
    static constexpr const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (bytes == 0 || bytes % 1024 != 0) return std::to_string(bytes) + " bytes";
    uint64_t value = bytes / 1024;
    size_t unit = 0;
    while (value % 1024 == 0 && unit + 1 < std::size(units)) {
        value /= 1024;
        ++unit;
    }
    return std::to_string(value) + " " + units[unit];
}

std::string hex_text(uint64_t value) {
    char text[24];
    std::snprintf(text, sizeof text, "%#llx", static_cast<unsigned long long>(value));
    return text;
}

}  // namespace kite
