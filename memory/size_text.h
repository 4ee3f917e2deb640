// Sizes and addresses in error messages, written the way users write them in configs.
#pragma once

#include <cstdint>
#include <string>

namespace kite {

// "512 MiB", "4 KiB", "12345 bytes" (the largest binary unit that divides the size exactly).
std::string size_text(uint64_t bytes);
// "0xc0000000" ("0" for zero).
std::string hex_text(uint64_t value);

}  // namespace kite
