// virtio-net feature bits (VIRTIO 1.2 section 5.1.3) that Kite offers.
#pragma once

#include <cstdint>

namespace kite::net {

inline constexpr uint64_t kCsum = 1ull << 0;
inline constexpr uint64_t kGuestCsum = 1ull << 1;
inline constexpr uint64_t kMac = 1ull << 5;
inline constexpr uint64_t kGuestTso4 = 1ull << 7;
inline constexpr uint64_t kGuestTso6 = 1ull << 8;
inline constexpr uint64_t kGuestUfo = 1ull << 10;
inline constexpr uint64_t kHostTso4 = 1ull << 11;
inline constexpr uint64_t kHostTso6 = 1ull << 12;
inline constexpr uint64_t kStatus = 1ull << 16;

}  // namespace kite::net
