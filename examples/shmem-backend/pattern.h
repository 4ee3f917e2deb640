// The known content the shmem-backend example maps into the guest and the guest check looks for:
// a 16-byte magic, then byte i = (i * 131 + 7) & 0xff. Shared by both programs.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kite::example {

inline constexpr char kPatternMagic[16] = {'K', 'I', 'T', 'E', '-', 'S', 'H', 'M', 'E', 'M', '-', 'P', 'A', 'T', 'T', '\n'};

inline uint8_t pattern_byte(uint64_t i) {
    if (i < sizeof(kPatternMagic)) return static_cast<uint8_t>(kPatternMagic[i]);
    return static_cast<uint8_t>(i * 131 + 7);
}

}  // namespace kite::example
