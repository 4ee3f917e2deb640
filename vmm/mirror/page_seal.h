// PageSeal: the host-side implementation of the mirror helper's page sealing (ChaCha20 + SipHash-2-4, see
// helper_abi.h). The helper seals inside the mirror VM; this code exists to check its output in tests and
// to let unit tests exercise the record format without KVM. The same primitives (seal_core.h) are compiled
// into the helper; OpenSSL-generated vectors in tests/unit/mirror pin the algorithms themselves.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "base/error.h"
#include "memory/address.h"
#include "vmm/mirror/helper_abi.h"

namespace kite {

using SealedRecord = kite_mirror_record;
inline constexpr size_t kMirrorPageSize = KITE_MIRROR_PAGE_SIZE;

// The transport key the helper seals with. Both sides of a migration (or a snapshot and its restore) must
// use the same key; it is never written into a snapshot file.
struct MirrorKey {
    std::array<uint8_t, 32> cipher{};
    std::array<uint8_t, 16> mac{};

    // A fresh key from getrandom.
    static Result<MirrorKey> random();
    bool operator==(const MirrorKey&) const = default;
};

// Seals one page as the helper's EXPORT does.
SealedRecord seal_page(const MirrorKey& key, uint64_t ram_offset, uint64_t nonce,
                       std::span<const std::byte, kMirrorPageSize> page, uint32_t flags = 0);

// Verifies a record and decrypts it into `page`. On any failure `page` is left unchanged.
Result<void> open_record(const MirrorKey& key, const SealedRecord& record,
                         std::span<std::byte, kMirrorPageSize> page);

// The 16-byte SipHash-2-4 / ChaCha20 primitives, exposed for vector tests.
uint64_t siphash24(std::span<const uint8_t, 16> key, std::span<const uint8_t> message);
void chacha20_xor(std::span<const uint8_t, 32> key, std::span<const uint32_t, 3> nonce, uint32_t counter,
                  std::span<const uint8_t> in, std::span<uint8_t> out);

}  // namespace kite
