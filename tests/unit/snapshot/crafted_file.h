// Hand-made snapshot files for tests: sections with correct checksums around arbitrary (often hostile)
// payloads, so a test reaches the field it means to test rather than a checksum error.
#pragma once

#include <cstdint>
#include <vector>

#include "vmm/snapshot/byte_io.h"
#include "vmm/snapshot/crc32c.h"
#include "vmm/snapshot/snapshot.h"

namespace kite::test {

// A section header with correct checksums for a payload of `length` bytes whose CRC is `payload_crc`.
inline std::vector<uint8_t> section_header(SectionType type, uint64_t length, uint32_t payload_crc) {
    ByteWriter h;
    h.u32(static_cast<uint32_t>(type));
    h.u32(0);
    h.u64(length);
    h.u32(payload_crc);
    h.u32(crc32c(h.data()));
    return h.data();
}

// A section with correct checksums around an arbitrary payload.
inline std::vector<uint8_t> make_section(SectionType type, const std::vector<uint8_t>& payload) {
    auto out = section_header(type, payload.size(), crc32c(payload));
    out.insert(out.end(), payload.begin(), payload.end());
    return out;
}

// A valid file header (no sections).
inline std::vector<uint8_t> file_header() {
    auto bytes = encode_snapshot(SnapshotData{}).value();
    bytes.resize(kSnapshotHeaderSize);
    return bytes;
}

// Header + the given sections + a correct trailer.
inline std::vector<uint8_t> make_file(const std::vector<std::vector<uint8_t>>& sections) {
    auto bytes = file_header();
    for (const auto& s : sections) bytes.insert(bytes.end(), s.begin(), s.end());
    ByteWriter end;
    end.u64(sections.size());
    end.u64(bytes.size() + kSectionHeaderSize + 16);
    auto trailer = make_section(SectionType::End, end.data());
    bytes.insert(bytes.end(), trailer.begin(), trailer.end());
    return bytes;
}

}  // namespace kite::test
