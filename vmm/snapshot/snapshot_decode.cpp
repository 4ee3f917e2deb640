// Decoding side of the snapshot format (snapshot.h). The input is hostile: every length is checked
// against the bytes that remain before anything is allocated, and every field is validated.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <new>
#include <set>
#include <stdexcept>
#include <string>

#include "base/size.h"
#include "vmm/snapshot/byte_io.h"
#include "vmm/snapshot/crc32c.h"
#include "vmm/snapshot/snapshot.h"
#include "vmm/snapshot/snapshot_source.h"

namespace kite {

namespace {

constexpr uint64_t kPage = kMirrorPageSize;
constexpr uint64_t kUnmapped = ~0ull;
// Sections other than memory hold a vCPU's registers (xsave at most 1 MiB, 4096 MSRs) or a device's
// state: nothing near this. A longer one is refused before a byte of it is allocated or read, whatever
// length a (sparse) file claims.
constexpr uint64_t kMaxStateSectionSize = 16ull << 20;

// The most the decoder allocates for one piece of a file: the host's physical memory. A hostile sparse
// file can claim any length; asking for more would throw (or abort under a sanitizer), not be refused.
uint64_t host_memory() {
    static const uint64_t bytes = static_cast<uint64_t>(::sysconf(_SC_PHYS_PAGES)) *
                                  static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    return bytes;
}

Result<void> fits_in_memory(uint64_t n, const std::string& what) {
    if (n > host_memory())
        return fail(what + ": " + format_size(n) + " to hold in memory, more than this host has (" +
                    format_size(host_memory()) + ")");
    return {};
}

const char* section_name(uint32_t type) {
    switch (static_cast<SectionType>(type)) {
    case SectionType::Vcpu: return "vcpu";
    case SectionType::Clock: return "clock";
    case SectionType::Device: return "device";
    case SectionType::Memory: return "memory";
    case SectionType::End: return "trailer";
    }
    return "unknown";
}

// Parses one section payload; `what` names it in errors.
class SectionParser {
public:
    SectionParser(std::span<const uint8_t> payload, std::string what) : r_(payload), what_(std::move(what)) {}

    std::unexpected<Error> overflow() const { return fail(what_ + ": section overflow (a field runs past its end)"); }
    std::unexpected<Error> bad(const std::string& why) const { return fail(what_ + ": " + why); }
    Result<void> finish() const {
        if (!r_.done()) return fail(what_ + ": " + std::to_string(r_.remaining()) + " unexpected bytes at its end");
        return {};
    }
    ByteReader& r() { return r_; }

    template <class T>
    Result<T> sized(const char* field) {
        auto v = r_.sized<T>();
        if (!v) return bad(std::string(field) + " is truncated or has the wrong size");
        return *v;
    }

private:
    ByteReader r_;
    std::string what_;
};

#define KITE_GET(var, expr)                      \
    auto var##_opt = (expr);                     \
    if (!var##_opt) return p.overflow();         \
    auto var = *var##_opt
#define KITE_SIZED(var, T, field)                \
    auto var##_res = p.sized<T>(field);          \
    if (!var##_res) return std::unexpected(var##_res.error()); \
    auto var = *var##_res

Result<VcpuState> parse_vcpu(SectionParser& p) {
    VcpuState v;
    KITE_GET(index, p.r().u32());
    if (index >= kMaxVcpus) return p.bad("vCPU index out of range");
    v.index = index;
    { KITE_SIZED(x, kvm_regs, "kvm_regs"); v.regs = x; }
    { KITE_SIZED(x, kvm_sregs, "kvm_sregs"); v.sregs = x; }
    { KITE_SIZED(x, kvm_fpu, "kvm_fpu"); v.fpu = x; }
    KITE_GET(xsave_len, p.r().u32());
    if (xsave_len > kMaxXsaveSize) return p.bad("xsave area too large");
    KITE_GET(xsave, p.r().bytes(xsave_len));
    v.xsave.assign(xsave.begin(), xsave.end());
    { KITE_SIZED(x, kvm_xcrs, "kvm_xcrs"); v.xcrs = x; }
    KITE_GET(nmsrs, p.r().u32());
    if (nmsrs > kMaxSnapshotMsrs) return p.bad("too many MSRs");
    if (uint64_t{nmsrs} * 16 > p.r().remaining()) return p.overflow();
    for (uint32_t i = 0; i < nmsrs; ++i) {
        kvm_msr_entry e{};
        KITE_GET(idx, p.r().u32());
        KITE_GET(reserved, p.r().u32());
        KITE_GET(value, p.r().u64());
        if (reserved != 0) return p.bad("MSR entry reserved field is not zero");
        e.index = idx;
        e.data = value;
        v.msrs.push_back(e);
    }
    { KITE_SIZED(x, kvm_lapic_state, "kvm_lapic_state"); v.lapic = x; }
    { KITE_SIZED(x, kvm_vcpu_events, "kvm_vcpu_events"); v.events = x; }
    { KITE_SIZED(x, kvm_mp_state, "kvm_mp_state"); v.mp_state = x; }
    if (auto ok = p.finish(); !ok) return std::unexpected(ok.error());
    return v;
}

Result<DeviceState> parse_device(SectionParser& p) {
    DeviceState d;
    KITE_GET(name_len, p.r().u32());
    if (name_len == 0 || name_len > kMaxDeviceNameSize) return p.bad("device name length out of range");
    KITE_GET(name, p.r().bytes(name_len));
    d.name.assign(reinterpret_cast<const char*>(name.data()), name.size());
    KITE_GET(data_len, p.r().u64());
    KITE_GET(data, p.r().bytes(data_len));
    d.data.assign(data.begin(), data.end());
    if (auto ok = p.finish(); !ok) return std::unexpected(ok.error());
    return d;
}

// A memory section up to its pages or records: the block's fields and, for Plain, the page index list
// and the zero padding. `at` is the payload's file offset (it fixes the padding).
Result<MemoryBlockState> parse_memory_head(SectionParser& p, uint64_t at, uint64_t& count) {
    MemoryBlockState m;
    KITE_GET(offset, p.r().u64());
    KITE_GET(size, p.r().u64());
    KITE_GET(gpa, p.r().u64());
    KITE_GET(encoding, p.r().u32());
    KITE_GET(pad, p.r().u32());
    if (size == 0 || size % kPage != 0 || offset % kPage != 0 || !range_fits(offset, size))
        return p.bad("RAM block offset/size not page aligned, empty or wrapping");
    if (gpa != kUnmapped && (gpa % kPage != 0 || !range_fits(gpa, size)))
        return p.bad("RAM block GPA not page aligned or wrapping");
    m.ram_offset = offset;
    m.size = size;
    if (gpa != kUnmapped) m.gpa = gpa;
    KITE_GET(n, p.r().u64());
    if (n > size / kPage) return p.bad("more pages than the block holds");
    count = n;
    if (encoding == static_cast<uint32_t>(PageEncoding::Sealed)) {
        if (pad != 0) return p.bad("reserved field is not zero");
        m.encoding = PageEncoding::Sealed;
        return m;
    }
    if (encoding != static_cast<uint32_t>(PageEncoding::Plain))
        return p.bad("unknown page encoding " + std::to_string(encoding));
    m.encoding = PageEncoding::Plain;
    if (count > p.r().remaining() / 8) return p.overflow();
    if (pad != plain_pages_padding(at, count)) return p.bad("padding does not put the pages at a 4 KiB boundary");
    m.page_indices.reserve(count);
    for (uint64_t i = 0; i < count; ++i) {
        KITE_GET(index, p.r().u64());
        if (index >= size / kPage || (!m.page_indices.empty() && index <= m.page_indices.back()))
            return p.bad("page index out of range or not increasing");
        m.page_indices.push_back(index);
    }
    KITE_GET(padding, p.r().bytes(pad));
    if (std::any_of(padding.begin(), padding.end(), [](uint8_t b) { return b != 0; }))
        return p.bad("padding is not zero");
    return m;
}

// A whole memory section in memory (the general path: sealed records, or anything the fast path of
// read_memory did not take).
Result<MemoryBlockState> parse_memory(SectionParser& p, uint64_t at) {
    uint64_t count = 0;
    auto head = parse_memory_head(p, at, count);
    if (!head) return head;
    MemoryBlockState& m = *head;
    // Compared by division: count is the file's, and count * record size can wrap to a small number.
    if (m.encoding == PageEncoding::Plain) {
        if (count > p.r().remaining() / kPage) return p.overflow();
        KITE_GET(pages, p.r().bytes(count * kPage));
        m.pages.assign(pages.begin(), pages.end());
    } else {
        if (count > p.r().remaining() / sizeof(SealedRecord)) return p.overflow();
        m.records.resize(count);
        for (uint64_t i = 0; i < count; ++i) {
            KITE_GET(rec, p.r().pod<SealedRecord>());
            if (rec.ram_offset < m.ram_offset || rec.ram_offset - m.ram_offset >= m.size || rec.ram_offset % kPage != 0)
                return p.bad("sealed record outside its RAM block");
            m.records[i] = rec;
        }
    }
    if (auto ok = p.finish(); !ok) return std::unexpected(ok.error());
    return head;
}

// The next n bytes of `in` (`what` names them in errors): lent, or read into `buffer`. n is at most
// in.remaining() (checked by the caller), so a hostile length never allocates more than the file holds,
// nor more than the host's memory.
Result<std::span<const uint8_t>> take(SnapshotSource& in, uint64_t n, std::vector<uint8_t>& buffer,
                                      const std::string& what) {
    if (auto lent = in.lend(n)) return *lent;
    if (auto ok = fits_in_memory(n, what); !ok) return std::unexpected(ok.error());
    buffer.resize(n);
    if (auto r = in.read(buffer); !r) return std::unexpected(r.error());
    return std::span<const uint8_t>(buffer);
}

// Reads the rest of a section (`left` bytes) only to finish its checksum.
Result<uint32_t> crc_of_rest(SnapshotSource& in, uint64_t left, uint32_t crc) {
    std::vector<uint8_t> chunk;
    while (left > 0) {
        auto part = take(in, std::min<uint64_t>(left, 1 << 20), chunk, "checksum");
        if (!part) return std::unexpected(part.error());
        crc = crc32c(*part, crc);
        left -= part->size();
    }
    return crc;
}

// A memory section of `length` bytes whose payload starts at file offset `at`. A well-formed Plain block
// is read in place: its metadata first, then its pages straight to where they go (the target's memory,
// lent from the source, or `pages`), the checksum taken over them on the way. Everything else is read
// whole and parsed by parse_memory, so every error reads as it does for other sections.
Result<MemoryBlockState> read_memory(SnapshotSource& in, uint64_t length, uint64_t at, uint32_t payload_crc,
                                     const std::string& what, const MemoryTarget& target, bool copy_pages) {
    std::vector<uint8_t> meta(std::min<uint64_t>(length, kMemoryHeadSize));
    if (auto r = in.read(meta); !r) return std::unexpected(r.error());
    uint64_t count = 0, meta_size = 0;
    bool fast = false;
    if (meta.size() == kMemoryHeadSize) {
        ByteReader r(meta);
        r.bytes(24);
        uint32_t encoding = *r.u32(), pad = *r.u32();
        count = *r.u64();
        // count is the file's: bounded by division before anything is multiplied by it.
        fast = encoding == static_cast<uint32_t>(PageEncoding::Plain) && count <= length / (8 + kPage) &&
               pad < kPage;
        meta_size = fast ? kMemoryHeadSize + count * 8 + pad : 0;
        fast = fast && length == meta_size + count * kPage;
    }
    if (!fast) {
        std::vector<uint8_t> rest;
        auto more = take(in, length - meta.size(), rest, what);
        if (!more) return std::unexpected(more.error());
        meta.insert(meta.end(), more->begin(), more->end());
        if (payload_crc != crc32c(meta)) return fail(what + ": checksum mismatch");
        SectionParser p(meta, what);
        return parse_memory(p, at);
    }
    if (auto ok = fits_in_memory(meta_size, what); !ok) return std::unexpected(ok.error());
    meta.resize(meta_size);
    if (auto r = in.read(std::span(meta).subspan(kMemoryHeadSize)); !r) return std::unexpected(r.error());
    uint32_t crc = crc32c(meta);
    SectionParser p(meta, what);
    auto head = parse_memory_head(p, at, count);
    if (head && !p.r().done()) head = p.bad("section overflow");  // cannot happen: meta_size is exact
    if (!head) {
        // A checksum mismatch explains a bad field best: finish the checksum before naming the field.
        auto all = crc_of_rest(in, count * kPage, crc);
        if (!all) return std::unexpected(all.error());
        if (*all != payload_crc) return fail(what + ": checksum mismatch");
        return head;
    }
    MemoryBlockState& m = *head;
    if (target) {
        auto dest = target(m);
        if (!dest) return std::unexpected(dest.error());
        if (dest->size() != m.size) return fail(what + ": the VM's RAM block is not the block's size");
        uint64_t next = 0;  // the first page not yet written
        Result<void> read{};
        for_each_page_run(m.page_indices, [&](size_t, uint64_t first, size_t run) {
            zero_guest_pages(dest->subspan(next * kPage, (first - next) * kPage));
            auto pages = dest->subspan(first * kPage, run * kPage);
            read = in.read_pages(pages);
            if (!read) return false;
            crc = crc32c({reinterpret_cast<const uint8_t*>(pages.data()), pages.size()}, crc);
            next = first + run;
            return true;
        });
        if (!read) return std::unexpected(read.error());
        zero_guest_pages(dest->subspan(next * kPage));
        m.in_place = true;
    } else if (auto lent = copy_pages ? std::nullopt : in.lend(count * kPage)) {
        m.packed = *lent;
        crc = crc32c(m.packed, crc);
    } else {
        if (auto ok = fits_in_memory(count * kPage, what); !ok) return std::unexpected(ok.error());
        m.pages.resize(count * kPage);
        if (auto r = in.read(m.pages); !r) return std::unexpected(r.error());
        crc = crc32c(m.pages, crc);
    }
    if (crc != payload_crc) return fail(what + ": checksum mismatch");
    return head;
}

// Cross-section checks: unique vCPU indices and device names, non-overlapping RAM blocks.
Result<void> check_consistency(const SnapshotData& d) {
    std::set<uint32_t> indices;
    for (const auto& v : d.vcpus)
        if (!indices.insert(v.index).second) return fail("snapshot: vCPU " + std::to_string(v.index) + " appears twice");
    std::set<std::string> names;
    for (const auto& dev : d.devices)
        if (!names.insert(dev.name).second) return fail("snapshot: device '" + dev.name + "' appears twice");
    for (size_t i = 0; i < d.memory.size(); ++i)
        for (size_t j = 0; j < i; ++j)
            if (ranges_overlap(d.memory[i].ram_offset, d.memory[i].size, d.memory[j].ram_offset, d.memory[j].size))
                return fail("snapshot: RAM blocks " + std::to_string(j) + " and " + std::to_string(i) + " overlap");
    return {};
}

// Bytes in memory, lent without a copy.
class SpanSource final : public SnapshotSource {
public:
    explicit SpanSource(std::span<const uint8_t> bytes) : SnapshotSource(bytes.size()), bytes_(bytes) {}
    Result<void> read(std::span<uint8_t> out) override {
        std::memcpy(out.data(), bytes_.data() + pos_, out.size());
        pos_ += out.size();
        return {};
    }
    std::optional<std::span<const uint8_t>> lend(uint64_t n) override {
        auto s = bytes_.subspan(pos_, n);
        pos_ += n;
        return s;
    }

private:
    std::span<const uint8_t> bytes_;
};

Result<SnapshotData> decode_checked(SnapshotSource& in, const MemoryTarget& target, bool copy_pages) {
    if (in.size() < kSnapshotHeaderSize) return fail("snapshot truncated: shorter than its header");
    std::array<uint8_t, kSnapshotHeaderSize> file_header;
    if (auto r = in.read(file_header); !r) return std::unexpected(r.error());
    if (std::memcmp(file_header.data(), kSnapshotMagic, sizeof kSnapshotMagic) != 0)
        return fail("not a Kite snapshot (bad magic)");
    ByteReader head{std::span<const uint8_t>(file_header).subspan(8, 16)};
    uint32_t version = *head.u32(), flags = *head.u32(), reserved = *head.u32(), crc = *head.u32();
    if (version != kSnapshotVersion)
        return fail("unsupported snapshot version " + std::to_string(version) + " (this Kite reads version " +
                    std::to_string(kSnapshotVersion) + ")");
    if (crc != crc32c(std::span(file_header).first(20))) return fail("snapshot header checksum mismatch");
    if (reserved != 0) return fail("snapshot header: reserved field is not zero");
    if (flags & ~kSnapshotFlagSealedMemory) return fail("snapshot header: unknown flags");

    SnapshotData out;
    out.flags = flags;
    uint64_t count = 0;
    std::vector<uint8_t> buffer;
    for (;;) {
        const uint64_t at = in.position();
        if (in.remaining() < kSectionHeaderSize)
            return fail("snapshot truncated: no complete section header at byte " + std::to_string(at) +
                        (in.remaining() == 0 ? " (trailer missing)" : ""));
        std::array<uint8_t, kSectionHeaderSize> header;
        if (auto r = in.read(header); !r) return std::unexpected(r.error());
        ByteReader h(header);
        uint32_t type = *h.u32(), sec_reserved = *h.u32();
        uint64_t length = *h.u64();
        uint32_t payload_crc = *h.u32(), header_crc = *h.u32();
        std::string what = std::string(section_name(type)) + " section " + std::to_string(count) + " at byte " +
                           std::to_string(at);
        if (header_crc != crc32c(std::span(header).first(20))) return fail(what + ": section header checksum mismatch");
        if (sec_reserved != 0) return fail(what + ": reserved field is not zero");
        if (length > in.remaining())
            return fail("snapshot truncated: " + what + " claims " + std::to_string(length) + " bytes, " +
                        std::to_string(in.remaining()) + " left");
        if (static_cast<SectionType>(type) == SectionType::Memory) {
            auto m = read_memory(in, length, at + kSectionHeaderSize, payload_crc, what, target, copy_pages);
            if (!m) return std::unexpected(m.error());
            out.memory.push_back(std::move(*m));
            ++count;
            continue;
        }
        if (length > kMaxStateSectionSize)
            return fail(what + ": " + format_size(length) + ", more than any " + section_name(type) +
                        " section holds (at most " + format_size(kMaxStateSectionSize) + ")");
        auto payload = take(in, length, buffer, what);
        if (!payload) return std::unexpected(payload.error());
        if (payload_crc != crc32c(*payload)) return fail(what + ": checksum mismatch");
        SectionParser p(*payload, what);
        switch (static_cast<SectionType>(type)) {
        case SectionType::Vcpu: {
            if (out.vcpus.size() >= kMaxVcpus) return p.bad("too many vCPUs");
            auto v = parse_vcpu(p);
            if (!v) return std::unexpected(v.error());
            out.vcpus.push_back(std::move(*v));
            break;
        }
        case SectionType::Clock: {
            if (out.clock) return p.bad("second clock section");
            KITE_SIZED(x, kvm_clock_data, "kvm_clock_data");
            if (auto ok = p.finish(); !ok) return std::unexpected(ok.error());
            out.clock = x;
            break;
        }
        case SectionType::Device: {
            auto d = parse_device(p);
            if (!d) return std::unexpected(d.error());
            out.devices.push_back(std::move(*d));
            break;
        }
        case SectionType::End: {
            KITE_GET(sections, p.r().u64());
            KITE_GET(file_length, p.r().u64());
            if (auto ok = p.finish(); !ok) return std::unexpected(ok.error());
            if (sections != count) return p.bad("section count does not match (sections lost or added)");
            if (file_length != in.size() || in.remaining() != 0)
                return p.bad("file length does not match the trailer (bytes after the trailer)");
            if (auto ok = check_consistency(out); !ok) return std::unexpected(ok.error());
            return out;
        }
        default: return p.bad("unknown section type " + std::to_string(type));
        }
        ++count;
    }
}

}  // namespace

Result<SnapshotData> decode_from(SnapshotSource& in, const MemoryTarget& target, bool copy_pages) {
    // Every length is checked before it is allocated, but memory can still run out below the host's
    // total: a bad (or too large) file is refused, never an exception that ends Kite.
    try {
        return decode_checked(in, target, copy_pages);
    } catch (const std::bad_alloc&) {
        return fail("not enough memory to read the snapshot (at byte " + std::to_string(in.position()) + ")");
    } catch (const std::length_error&) {
        return fail("a length in the snapshot is beyond what this host can hold (at byte " +
                    std::to_string(in.position()) + ")");
    }
}

Result<SnapshotData> decode_snapshot(std::span<const uint8_t> bytes, bool copy_pages) {
    SpanSource in(bytes);
    return decode_from(in, {}, copy_pages);
}

}  // namespace kite
