// Encoding side of the snapshot format (snapshot.h), plus the Plain memory helpers.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>
#include <vector>

#include <array>
#include <cstring>
#include <string>

#include "memory/host_mapping.h"

#include "vmm/snapshot/byte_io.h"
#include "vmm/snapshot/crc32c.h"
#include "vmm/snapshot/snapshot.h"
#include "vmm/snapshot/snapshot_source.h"

namespace kite {

namespace {

constexpr uint64_t kPage = kMirrorPageSize;
constexpr uint64_t kUnmapped = ~0ull;

// Appends to a SnapshotPieces: owned buffers (moved in; their heap data does not move with them) and
// spans of the caller's data.
class PieceList {
public:
    explicit PieceList(SnapshotPieces& out) : out_(out) {}
    void own(std::vector<uint8_t> bytes) {
        if (bytes.empty()) return;
        ref(keep(std::move(bytes)));
    }
    // Only keeps the buffer alive (spans already point into it).
    const std::vector<uint8_t>& keep(std::vector<uint8_t> bytes) { return out_.owned.emplace_back(std::move(bytes)); }
    void ref(std::span<const uint8_t> bytes) {
        if (bytes.empty()) return;
        out_.spans.push_back(bytes);
        out_.size += bytes.size();
    }
    uint64_t size() const { return out_.size; }

private:
    SnapshotPieces& out_;
};

// A section: its header (length and checksums over all of `payload`), then the payload pieces.
void section(PieceList& out, SectionType type, SnapshotPieces payload) {
    uint32_t crc = 0;
    for (auto piece : payload.spans) crc = crc32c(piece, crc);
    ByteWriter h;
    h.u32(static_cast<uint32_t>(type));
    h.u32(0);
    h.u64(payload.size);
    h.u32(crc);
    h.u32(crc32c(h.data()));
    out.own(std::move(h.data()));
    // Moving a buffer keeps its heap data where the payload's spans point.
    for (auto& b : payload.owned) out.keep(std::move(b));
    for (auto piece : payload.spans) out.ref(piece);
}

void section(PieceList& out, SectionType type, std::vector<uint8_t> payload) {
    SnapshotPieces p;
    PieceList(p).own(std::move(payload));
    section(out, type, std::move(p));
}

template <class T>
std::span<const uint8_t> as_bytes(const std::vector<T>& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    return {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(T)};
}

std::vector<uint8_t> vcpu_payload(const VcpuState& v) {
    ByteWriter w;
    w.u32(v.index);
    w.sized(v.regs);
    w.sized(v.sregs);
    w.sized(v.fpu);
    w.u32(static_cast<uint32_t>(v.xsave.size()));
    w.bytes(v.xsave);
    w.sized(v.xcrs);
    w.u32(static_cast<uint32_t>(v.msrs.size()));
    for (const auto& m : v.msrs) {
        w.u32(m.index);
        w.u32(0);
        w.u64(m.data);
    }
    w.sized(v.lapic);
    w.sized(v.events);
    w.sized(v.mp_state);
    return std::move(w.data());
}

const std::array<uint8_t, kPage> kZeroPage{};

// The block's header is owned; its page indices (u64 each, little-endian like the rest of the format on
// this x86-only VMM), pages or sealed records are spans of `m`. `at` is the payload's file offset: Plain
// pages are padded to the next multiple of 4 KiB after it.
SnapshotPieces memory_payload(const MemoryBlockState& m, uint64_t at) {
    SnapshotPieces p;
    PieceList list(p);
    ByteWriter w;
    w.u64(m.ram_offset);
    w.u64(m.size);
    w.u64(m.gpa ? *m.gpa : kUnmapped);
    w.u32(static_cast<uint32_t>(m.encoding));
    if (m.encoding == PageEncoding::Plain) {
        const uint32_t pad = plain_pages_padding(at, m.page_indices.size());
        w.u32(pad);
        w.u64(m.page_indices.size());
        list.own(std::move(w.data()));
        list.ref(as_bytes(m.page_indices));
        list.ref(std::span(kZeroPage).first(pad));
        if (m.borrowed.empty()) {
            list.ref(plain_pages(m));
        } else {
            // Straight from guest RAM, one span per run of consecutive pages.
            auto* base = reinterpret_cast<const uint8_t*>(m.borrowed.data());
            for_each_page_run(m.page_indices,
                              [&](size_t, uint64_t first, size_t count) {
                                  list.ref({base + first * kPage, count * kPage});
                                  return true;
                              });
        }
    } else {
        w.u32(0);
        w.u64(m.records.size());
        list.own(std::move(w.data()));
        list.ref(as_bytes(m.records));
    }
    return p;
}

}  // namespace

Result<SnapshotPieces> encode_snapshot_pieces(const SnapshotData& data) {
    // Refuse to write what the reader would refuse, so a written snapshot always reads back.
    for (const auto& v : data.vcpus) {
        if (v.xsave.size() > kMaxXsaveSize) return fail("snapshot: xsave area too large");
        if (v.msrs.size() > kMaxSnapshotMsrs) return fail("snapshot: too many MSRs");
    }
    for (const auto& d : data.devices)
        if (d.name.empty() || d.name.size() > kMaxDeviceNameSize) return fail("snapshot: bad device name");
    for (const auto& m : data.memory)
        if (m.encoding == PageEncoding::Plain &&
            (m.borrowed.empty() ? plain_pages(m).size() != m.page_indices.size() * kPage
                                : m.borrowed.size() != m.size || !m.pages.empty()))
            return fail("snapshot: plain memory block pages and indices disagree");

    SnapshotPieces pieces;
    PieceList out(pieces);
    ByteWriter header;
    header.raw(kSnapshotMagic, sizeof kSnapshotMagic);
    header.u32(kSnapshotVersion);
    header.u32(data.flags);
    header.u32(0);
    header.u32(crc32c(header.data()));
    out.own(std::move(header.data()));
    uint64_t sections = 0;
    for (const auto& v : data.vcpus) {
        section(out, SectionType::Vcpu, vcpu_payload(v));
        ++sections;
    }
    if (data.clock) {
        ByteWriter w;
        w.sized(*data.clock);
        section(out, SectionType::Clock, std::move(w.data()));
        ++sections;
    }
    for (const auto& d : data.devices) {
        ByteWriter w;
        w.u32(static_cast<uint32_t>(d.name.size()));
        w.raw(d.name.data(), d.name.size());
        w.u64(d.data.size());
        w.bytes(d.data);
        section(out, SectionType::Device, std::move(w.data()));
        ++sections;
    }
    for (const auto& m : data.memory) {
        section(out, SectionType::Memory, memory_payload(m, out.size() + kSectionHeaderSize));
        ++sections;
    }
    ByteWriter end;
    end.u64(sections);
    end.u64(out.size() + kSectionHeaderSize + 16);
    section(out, SectionType::End, std::move(end.data()));
    return pieces;
}

Result<std::vector<uint8_t>> encode_snapshot(const SnapshotData& data) {
    auto pieces = encode_snapshot_pieces(data);
    if (!pieces) return std::unexpected(pieces.error());
    std::vector<uint8_t> bytes;
    bytes.reserve(pieces->size);
    for (auto piece : pieces->spans) bytes.insert(bytes.end(), piece.begin(), piece.end());
    return bytes;
}

namespace {

// Word by word, 64 bytes between exits: a data page usually answers in its first line, a zero page costs
// a pass at memory speed (byte by byte, the check was the slowest part of a snapshot).
bool page_is_zero(const std::byte* page) {
    for (size_t line = 0; line < kPage; line += 64) {
        uint64_t any = 0;
        for (size_t w = 0; w < 64; w += 8) {
            uint64_t word;
            std::memcpy(&word, page + line + w, sizeof word);
            any |= word;
        }
        if (any != 0) return false;
    }
    return true;
}

// The pages of a `size`-byte block that may hold data, as [first, end) page ranges: where `fd` backs the
// block (mapped from its offset 0), the file's data extents (SEEK_DATA/SEEK_HOLE: pages never written
// are holes, swapped-out pages count as data), so the pages a guest never touched are not read (reading
// shared memory allocates it); otherwise the whole block.
std::vector<std::pair<uint64_t, uint64_t>> data_extents(int fd, uint64_t size) {
    const uint64_t pages = size / kPage;
    if (fd < 0) return {{0, pages}};
    std::vector<std::pair<uint64_t, uint64_t>> out;
    for (off_t at = 0; static_cast<uint64_t>(at) < size;) {
        off_t data = ::lseek(fd, at, SEEK_DATA);
        if (data < 0 && errno == ENXIO) break;  // nothing but holes from here on
        if (data < 0) return {{0, pages}};     // no hole information: read it all
        off_t hole = ::lseek(fd, data, SEEK_HOLE);
        if (hole < 0) return {{0, pages}};
        const uint64_t first = static_cast<uint64_t>(data) / kPage;
        const uint64_t end = std::min(pages, (static_cast<uint64_t>(hole) + kPage - 1) / kPage);
        if (first < end) out.emplace_back(first, end);
        at = hole;
    }
    return out;
}

}  // namespace

// Guest RAM is shared memory: dropping the pages (MADV_REMOVE) zeroes them without touching them, so a
// mostly empty guest is restored without allocating all of its RAM. Other memory (the unit tests' heap,
// hugetlbfs with a range that is not huge-page aligned) is cleared by hand.
void zero_guest_pages(std::span<std::byte> pages) {
    if (pages.empty()) return;
    if (::madvise(pages.data(), pages.size(), MADV_REMOVE) == 0) return;
    std::memset(pages.data(), 0, pages.size());
}

Result<MemoryBlockState> plain_memory_block(uint64_t ram_offset, std::span<const std::byte> block,
                                            std::optional<uint64_t> gpa, bool copy, int fd) {
    MemoryBlockState m;
    m.ram_offset = ram_offset;
    m.size = block.size();
    m.gpa = gpa;
    m.encoding = PageEncoding::Plain;
    for (auto [first, end] : data_extents(fd, block.size()))
        for (uint64_t i = first; i < end; ++i)
            if (!page_is_zero(block.data() + i * kPage)) m.page_indices.push_back(i);
    if (!copy) {
        m.borrowed = block;
        return m;
    }
    if (m.page_indices.empty()) return m;
    // Page-aligned, so the copy goes to the file with direct I/O; populated in one go, because faulting
    // fresh memory in page by page costs more than the copy itself (far more under a hypervisor).
    const size_t bytes = m.page_indices.size() * kPage;
    void* at = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (at == MAP_FAILED)
        return std::unexpected(errno_error("cannot allocate " + std::to_string(bytes >> 20) + " MiB to copy guest memory"));
    auto copy_of = std::make_shared<HostMapping>(at, bytes);
    auto* out = reinterpret_cast<uint8_t*>(copy_of->data());
    for (size_t n = 0; n < m.page_indices.size(); ++n)
        std::memcpy(out + n * kPage, block.data() + m.page_indices[n] * kPage, kPage);
    m.packed = {out, bytes};
    m.owner = std::move(copy_of);
    return m;
}

void restore_plain_memory_block(const MemoryBlockState& state, std::span<std::byte> block) {
    const uint8_t* pages = plain_pages(state).data();
    uint64_t next = 0;  // the first page not yet written
    for_each_page_run(state.page_indices, [&](size_t n, uint64_t first, size_t count) {
        zero_guest_pages(block.subspan(next * kPage, (first - next) * kPage));
        std::memcpy(block.data() + first * kPage, pages + n * kPage, count * kPage);
        next = first + count;
        return true;
    });
    zero_guest_pages(block.subspan(next * kPage));
}

}  // namespace kite
