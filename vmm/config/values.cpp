// Value parsers and name suggestions shared by the YAML parser and the command line (vmm/config/fields.h).
#include "vmm/config/fields.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <net/if.h>
#include <string>
#include <vector>

namespace kite {

namespace {

// Levenshtein distance; config names are short, so the quadratic table is fine.
size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            size_t above = row[j];
            size_t substitute = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
            row[j] = std::min({above + 1, row[j - 1] + 1, substitute});
            diagonal = above;
        }
    }
    return row[b.size()];
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

std::string quote_value(std::string_view text) {
    constexpr size_t max_shown = 80;  // enough to recognise a value; a 1 MB scalar stays out of messages
    std::string out = "'";
    out += text.substr(0, max_shown);
    if (text.size() > max_shown) out += "...";
    out += "'";
    return out;
}

std::string printable(std::string_view text) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (char c : text) {
        auto byte = static_cast<unsigned char>(c);
        if (byte >= 0x20 && byte != 0x7f) {
            out += c;
        } else {
            out += "\\x";
            out += hex[byte >> 4];
            out += hex[byte & 15];
        }
    }
    return out;
}

std::string did_you_mean(std::string_view word, std::span<const std::string_view> candidates) {
    // Words this long are not typos of short names: skip the quadratic work (fuzzed input can be huge).
    if (word.empty() || word.size() > 64) return "";
    std::string_view best;
    size_t best_distance = SIZE_MAX;
    for (std::string_view candidate : candidates) {
        size_t distance = edit_distance(word, candidate);
        if (distance < best_distance) {
            best = candidate;
            best_distance = distance;
        }
    }
    // Up to a third of the name may be wrong ("kernal", "redonly", "vhost-usr-fs"), at least one edit.
    size_t allowed = std::max<size_t>(1, best.size() / 3);
    if (best_distance > allowed) return "";
    return " (did you mean '" + std::string(best) + "'?)";
}

std::string unknown_name_message(std::string_view what, std::string_view word,
                                 std::span<const std::string_view> candidates) {
    std::string message = "unknown ";
    message += what;
    message += did_you_mean(word, candidates);
    if (message.find("did you mean") == std::string::npos && !candidates.empty()) {
        message += " (one of:";
        for (std::string_view candidate : candidates) {
            message += ' ';
            message += candidate;
        }
        message += ')';
    }
    return message;
}

std::string resolve_path(std::string_view path, const FieldContext& context) {
    if (context.base_dir.empty() || path.starts_with('/')) return std::string(path);
    std::string resolved = context.base_dir;
    if (!resolved.ends_with('/')) resolved += '/';
    resolved += path;
    return resolved;
}

Result<uint64_t> parse_uint(std::string_view text, uint64_t min, uint64_t max) {
    std::string range = "expected a whole number from " + std::to_string(min) + " to " + std::to_string(max);
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    bool digits_only = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
        return c >= '0' && c <= '9';
    });
    if (!digits_only || ec == std::errc::invalid_argument || end != text.data() + text.size()) {
        return fail(range + ", got " + quote_value(text));
    }
    if (ec == std::errc::result_out_of_range || value < min || value > max) {
        return fail(range + ", got " + std::string(text));
    }
    return value;
}

Result<bool> parse_bool(std::string_view text) {
    // YAML writers use True and TRUE as well; any case is fine.
    std::string word(text.substr(0, 8));
    std::transform(word.begin(), word.end(), word.begin(), [](unsigned char c) { return std::tolower(c); });
    if (text.size() <= 5 && (word == "true" || word == "yes" || word == "on")) return true;
    if (text.size() <= 5 && (word == "false" || word == "no" || word == "off")) return false;
    return fail("expected true or false, got " + quote_value(text));
}

Result<std::array<uint8_t, 6>> parse_mac(std::string_view text) {
    std::string bad = "expected a MAC address like 52:54:00:12:34:56, got " + quote_value(text);
    if (text.size() != 17) return fail(bad);
    std::array<uint8_t, 6> mac{};
    for (size_t i = 0; i < mac.size(); ++i) {
        int high = hex_digit(text[i * 3]);
        int low = hex_digit(text[i * 3 + 1]);
        if (high < 0 || low < 0 || (i < 5 && text[i * 3 + 2] != ':')) return fail(bad);
        mac[i] = static_cast<uint8_t>(high * 16 + low);
    }
    // A NIC needs a unicast address: bit 0 of the first byte set means multicast.
    if (mac[0] & 1) return fail(quote_value(text) + " is a multicast address (the first byte must be even)");
    if (std::all_of(mac.begin(), mac.end(), [](uint8_t b) { return b == 0; })) {
        return fail("00:00:00:00:00:00 is not a usable address");
    }
    return mac;
}

Result<void> check_tap_name(std::string_view name) {
    // The kernel's dev_valid_name(): 1..IFNAMSIZ-1 bytes, not "." or "..", no '/', ':' or white space.
    if (name.empty()) return fail("must not be empty");
    if (name.size() >= IFNAMSIZ) {
        return fail(quote_value(name) + " is longer than " + std::to_string(IFNAMSIZ - 1) + " bytes (IFNAMSIZ)");
    }
    if (name == "." || name == "..") return fail(quote_value(name) + " is not an interface name");
    for (char c : name) {
        if (c == '/' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
            c == '\f' || c == '\0') {
            return fail(quote_value(name) + " contains a character interface names cannot have");
        }
    }
    return {};
}

Result<OutputConfig> parse_output(std::string_view text, const FieldContext& context) {
    if (text == "stdio") return OutputConfig{OutputConfig::Mode::Stdio, {}};
    if (text == "off") return OutputConfig{OutputConfig::Mode::Off, {}};
    constexpr std::string_view file_prefix = "file:";
    if (text.starts_with(file_prefix)) {
        std::string_view path = text.substr(file_prefix.size());
        if (path.empty()) return fail("file: needs a path");
        return OutputConfig{OutputConfig::Mode::File, resolve_path(path, context)};
    }
    return fail("expected stdio, off or a file (file:PATH, or {file: PATH} in YAML), got " + quote_value(text));
}

}  // namespace kite
