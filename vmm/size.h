// Byte sizes as users write them in configs and on the command line: "4096", "64K", "512M", "1G", "2GiB".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "memory/error.h"

namespace kite {

// Parses a byte count: decimal digits, optionally followed by one unit letter K, M, G or T (either case,
// powers of 1024) and an optional "iB" ("4KiB" == "4K" == 4096). No sign, no fraction, no spaces, no
// decimal "KB"/"MB" (ambiguous). Fails on garbage and on values above UINT64_MAX. Zero is accepted here;
// callers decide whether zero means anything.
Result<uint64_t> parse_size(std::string_view text);

// The shortest exact spelling parse_size accepts back: 1073741824 -> "1G", 1536 -> "1536", 3072 -> "3K".
std::string format_size(uint64_t bytes);

}  // namespace kite
