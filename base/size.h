// Sizes and addresses as text: parsing the sizes users write in configs and on the command line ("4096",
// "64K", "512M", "1G", "2GiB"), and the one way Kite spells sizes, addresses and ranges in messages.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"

namespace kite {

// Parses a byte count: decimal digits, optionally followed by one unit letter K, M, G or T (either case,
// powers of 1024) and an optional "iB" ("4KiB" == "4K" == 4096). No sign, no fraction, no spaces, no
// decimal "KB"/"MB" (ambiguous). Fails on garbage and on values above UINT64_MAX. Zero is accepted here;
// callers decide whether zero means anything.
Result<uint64_t> parse_size(std::string_view text);

// "512 MiB", "4 KiB", "12345 bytes": the largest binary unit that divides the size exactly.
std::string format_size(uint64_t bytes);
// "0xc0000000" ("0" for zero).
std::string hex_text(uint64_t value);
// "[0x1000, +0x2000)": a range by its start and length.
std::string range_text(uint64_t start, uint64_t length);

}  // namespace kite
