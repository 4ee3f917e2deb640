// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every snapshot section.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace kite {

// Continues a CRC: crc32c(b, crc32c(a)) == crc32c(a ++ b). Start with 0.
uint32_t crc32c(std::span<const uint8_t> data, uint32_t crc = 0);

}  // namespace kite
