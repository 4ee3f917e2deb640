#include "vmm/size.h"

#include <charconv>

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
    static constexpr char units[] = {'T', 'G', 'M', 'K'};
    static constexpr int shifts[] = {40, 30, 20, 10};
    for (size_t i = 0; i < std::size(units); ++i) {
        uint64_t mask = (uint64_t{1} << shifts[i]) - 1;
        if (bytes != 0 && (bytes & mask) == 0) return std::to_string(bytes >> shifts[i]) + units[i];
    }
    return std::to_string(bytes);
}

}  // namespace kite
