// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every snapshot section.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace kite {

// Continues a CRC: crc32c(b, crc32c(a)) == crc32c(a ++ b). Start with 0.
// Uses the CPU's crc32 instruction where there is one.
uint32_t crc32c(std::span<const uint8_t> data, uint32_t crc = 0);
// The same by table lookup on any CPU (what crc32c falls back to; the tests compare the two).
uint32_t crc32c_portable(std::span<const uint8_t> data, uint32_t crc = 0);

}  // namespace kite
