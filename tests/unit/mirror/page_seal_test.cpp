// Vectors generated with OpenSSL 3 (`openssl enc -chacha20`, `openssl mac SIPHASH`), an implementation
// independent of seal_core.h.
#include <doctest/doctest.h>

#include <array>
#include <cstring>
#include <string_view>
#include <vector>

#include "vmm/mirror/page_seal.h"

using namespace kite;

namespace {

std::vector<uint8_t> from_hex(std::string_view hex) {
    std::vector<uint8_t> out;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
    return out;
}

template <size_t N>
std::array<uint8_t, N> counting_bytes() {
    std::array<uint8_t, N> a{};
    for (size_t i = 0; i < N; ++i) a[i] = static_cast<uint8_t>(i);
    return a;
}

MirrorKey test_key() {
    return MirrorKey{counting_bytes<32>(), counting_bytes<16>()};
}

std::array<std::byte, kMirrorPageSize> pattern_page() {
    std::array<std::byte, kMirrorPageSize> p{};
    for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<std::byte>((i * 7 + 3) & 255);
    return p;
}

}  // namespace

TEST_CASE("SipHash-2-4 of bytes 00..0e under key 00..0f is the reference a129ca6149be45e5") {
    auto key = counting_bytes<16>();
    auto msg = counting_bytes<15>();
    CHECK(siphash24(key, msg) == 0xa129ca6149be45e5ull);
}

TEST_CASE("ChaCha20 encrypts the RFC 8439 sunscreen text to the reference ciphertext") {
    auto key = counting_bytes<32>();
    const uint32_t nonce[3] = {0, 0x4a000000, 0};
    std::string_view text =
        "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would "
        "be it.";
    std::vector<uint8_t> out(text.size());
    chacha20_xor(key, nonce, 1, std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()), out);
    CHECK(out == from_hex("6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0bf91b65c5524733ab8f593dabcd"
                          "62b3571639d624e65152ab8f530c359f0861d807ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce9"
                          "1ab77937365af90bbf74a35be6b40b8eedf2785e42874d"));
}

TEST_CASE("sealing a page gives the OpenSSL ciphertext and MAC for its offset and nonce") {
    auto page = pattern_page();
    SealedRecord r = seal_page(test_key(), 0x5000, 0x1122334455667788ull, page);
    CHECK(r.ram_offset == 0x5000);
    CHECK(r.nonce == 0x1122334455667788ull);
    CHECK(std::vector<uint8_t>(r.ciphertext, r.ciphertext + 16) == from_hex("c5e9aac8edb3fcb70118350fe68e7de2"));
    CHECK(std::vector<uint8_t>(r.ciphertext + 4080, r.ciphertext + 4096) == from_hex("782b9dd2b925d8b8e99e17da3683ed83"));
    CHECK(r.mac == 0x63bb29a7509c98e3ull);
}

TEST_CASE("an opened record gives back the sealed page") {
    auto page = pattern_page();
    SealedRecord r = seal_page(test_key(), 0x3000, 42, page);
    std::array<std::byte, kMirrorPageSize> out{};
    auto ok = open_record(test_key(), r, out);
    CHECK(ok.has_value());
    CHECK(out == page);
}

TEST_CASE("a record with one flipped ciphertext bit is refused and the target page is untouched") {
    SealedRecord r = seal_page(test_key(), 0x3000, 42, pattern_page());
    r.ciphertext[100] ^= 1;
    std::array<std::byte, kMirrorPageSize> out{};
    out.fill(std::byte{0x5a});
    auto ok = open_record(test_key(), r, out);
    CHECK_FALSE(ok.has_value());
    CHECK(out[100] == std::byte{0x5a});
}

TEST_CASE("a record moved to another RAM offset is refused") {
    SealedRecord r = seal_page(test_key(), 0x3000, 42, pattern_page());
    r.ram_offset = 0x4000;
    std::array<std::byte, kMirrorPageSize> out{};
    CHECK_FALSE(open_record(test_key(), r, out).has_value());
}

TEST_CASE("a record is refused under a different key") {
    SealedRecord r = seal_page(test_key(), 0x3000, 42, pattern_page());
    MirrorKey other = test_key();
    other.mac[0] ^= 0x80;
    std::array<std::byte, kMirrorPageSize> out{};
    CHECK_FALSE(open_record(other, r, out).has_value());
}

TEST_CASE("two random mirror keys differ") {
    auto a = MirrorKey::random();
    auto b = MirrorKey::random();
    REQUIRE(a.has_value());
    REQUIRE(b.has_value());
    CHECK_FALSE(*a == *b);
}
