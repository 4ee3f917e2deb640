#include "base/size.h"

#include <charconv>
#include <cstdio>

namespace kite {

namespace {

// log2 of the multiplier for a unit letter, or -1 when it is not one.
int unit_shift(char c) {
    switch (c) {
        case 'k': case 'K': return 10;
        case 'm': case 'M': return 20;
        case 'g': case 'G': return 30;
        case 't': case 'T': return 40;
        default: return -1;
    }
}

std::unexpected<Error> bad_size(std::string_view text, std::string_view why) {
    std::string message = "'";
    message += text;
    message += "' is not a size: ";
    message += why;
    return fail(std::move(message));
}

}  // namespace

Result<uint64_t> parse_size(std::string_view text) {
    if (text.empty()) return bad_size(text, "empty (write bytes or a number with K, M, G or T)");
    size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
    if (digits == 0) {
        return bad_size(text, text[0] == '-' ? "must not be negative"
                                             : "expected digits, then an optional K, M, G or T");
    }
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + digits, value);
    if (ec == std::errc::result_out_of_range) return bad_size(text, "too large");
    if (ec != std::errc() || end != text.data() + digits) return bad_size(text, "bad number");

    std::string_view suffix = text.substr(digits);
    if (suffix.empty()) return value;
    int shift = unit_shift(suffix[0]);
    if (shift < 0 || !(suffix.size() == 1 || suffix.substr(1) == "iB")) {
        if (suffix[0] == '.') return bad_size(text, "fractions are not supported (write 1536M, not 1.5G)");
        return bad_size(text, "unknown unit (use K, M, G or T, powers of 1024; KiB, MiB, GiB, TiB also work)");
    }
    if (value > (UINT64_MAX >> shift)) return bad_size(text, "too large");
    return value << shift;
}

std::string format_size(uint64_t bytes) {
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

std::string range_text(uint64_t start, uint64_t length) {
    return "[" + hex_text(start) + ", +" + hex_text(length) + ")";
}

}  // namespace kite
