#include "vmm/mirror/page_seal.h"

#include <sys/random.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <string>

#include "vmm/mirror/seal_core.h"

namespace kite {

Result<MirrorKey> MirrorKey::random() {
    MirrorKey key;
    std::array<uint8_t, 48> bytes{};
    size_t got = 0;
    while (got < bytes.size()) {
        ssize_t n = ::getrandom(bytes.data() + got, bytes.size() - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return std::unexpected(errno_error("getrandom (mirror key)"));
        got += static_cast<size_t>(n);
    }
    std::memcpy(key.cipher.data(), bytes.data(), 32);
    std::memcpy(key.mac.data(), bytes.data() + 32, 16);
    return key;
}

SealedRecord seal_page(const MirrorKey& key, uint64_t ram_offset, uint64_t nonce,
                       std::span<const std::byte, kMirrorPageSize> page, uint32_t flags) {
    SealedRecord r{};
    r.ram_offset = ram_offset;
    r.nonce = nonce;
    r.flags = flags;
    uint32_t words[3];
    kite_record_nonce_words(nonce, words);
    kite_chacha20_xor(key.cipher.data(), words, 0, reinterpret_cast<const uint8_t*>(page.data()), r.ciphertext,
                      kMirrorPageSize);
    r.mac = kite_record_mac(key.mac.data(), &r);
    return r;
}

Result<void> open_record(const MirrorKey& key, const SealedRecord& record,
                         std::span<std::byte, kMirrorPageSize> page) {
    if (record.reserved != 0 || record.flags != 0) return fail("sealed record: unexpected flags");
    if (kite_record_mac(key.mac.data(), &record) != record.mac)
        return fail("sealed record for RAM offset " + std::to_string(record.ram_offset) + ": MAC mismatch");
    uint32_t words[3];
    kite_record_nonce_words(record.nonce, words);
    kite_chacha20_xor(key.cipher.data(), words, 0, record.ciphertext, reinterpret_cast<uint8_t*>(page.data()),
                      kMirrorPageSize);
    return {};
}

uint64_t siphash24(std::span<const uint8_t, 16> key, std::span<const uint8_t> message) {
    return kite_siphash24(key.data(), message.data(), message.size());
}

void chacha20_xor(std::span<const uint8_t, 32> key, std::span<const uint32_t, 3> nonce, uint32_t counter,
                  std::span<const uint8_t> in, std::span<uint8_t> out) {
    kite_chacha20_xor(key.data(), nonce.data(), counter, in.data(), out.data(), std::min(in.size(), out.size()));
}

}  // namespace kite
