// Constants from the VIRTIO 1.2 specification that the core, the transport and several devices share.
// Device-specific constants live with their device.
#pragma once

#include <bit>
#include <cstdint>

namespace kite::virtio {

// Modern virtio is little endian; Kite reads rings and config fields as host integers.
static_assert(std::endian::native == std::endian::little, "virtio rings are little endian");

// Device-independent feature bits (spec 6, "Reserved Feature Bits").
inline constexpr uint64_t kFeatureIndirectDesc = 1ull << 28;
inline constexpr uint64_t kFeatureEventIdx = 1ull << 29;
inline constexpr uint64_t kFeatureVersion1 = 1ull << 32;
// Every built-in device offers these on top of its own features.
inline constexpr uint64_t kCommonFeatures = kFeatureIndirectDesc | kFeatureEventIdx | kFeatureVersion1;

// Device status bits (spec 2.1).
inline constexpr uint32_t kStatusAcknowledge = 1;
inline constexpr uint32_t kStatusDriver = 2;
inline constexpr uint32_t kStatusDriverOk = 4;
inline constexpr uint32_t kStatusFeaturesOk = 8;
inline constexpr uint32_t kStatusDeviceNeedsReset = 0x40;
inline constexpr uint32_t kStatusFailed = 0x80;

// Device ids (spec 5).
inline constexpr uint32_t kIdNet = 1;
inline constexpr uint32_t kIdBlock = 2;
inline constexpr uint32_t kIdConsole = 3;
inline constexpr uint32_t kIdEntropy = 4;

}  // namespace kite::virtio
