#include "vmm/mirror/mirror_layout.h"

#include <cpuid.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>

namespace kite {

namespace {

constexpr uint64_t kPresent = 1, kWritable = 2, kHuge = 0x80;
constexpr uint64_t kAddrMask = 0x000ffffffffff000ull;
constexpr uint64_t kPage = 4096;
constexpr uint64_t kVirtLimit = 1ull << 47;
constexpr uint64_t kPhysLimit = 1ull << 52;

uint64_t read_entry(std::span<const std::byte> area, uint64_t index_bytes) {
    uint64_t v;
    std::memcpy(&v, area.data() + index_bytes, sizeof v);
    return v;
}

}  // namespace

Result<uint64_t> mirror_high_base(const PhysAddressBits& bits, uint64_t ram_size) {
    unsigned width = std::min(bits.host, bits.guest);
    auto describe = [&] {
        return "host " + std::to_string(bits.host) + " bits, guest " + std::to_string(bits.guest) +
               " bits, SEV reduction " + std::to_string(bits.sev_reduction);
    };
    if (width <= bits.sev_reduction || width - bits.sev_reduction < 34 || width - bits.sev_reduction > 52)
        return fail("mirror VM: unusable physical address width (" + describe() + ")");
    width -= bits.sev_reduction;
    uint64_t high_base = 1ull << (width - 1);
    uint64_t limit = 1ull << width;
    if (ram_size > limit - high_base)
        return fail("mirror VM: " + std::to_string(ram_size >> 20) + " MiB of RAM does not fit above the high base " +
                    std::to_string(high_base >> 30) + " GiB (" + describe() + ")");
    return high_base;
}

PhysAddressBits host_phys_address_bits(unsigned supported_guest_leaf_80000008_eax, bool sev) {
    PhysAddressBits bits;
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid(0x80000008, &eax, &ebx, &ecx, &edx)) bits.host = eax & 0xff;
    unsigned guest = (supported_guest_leaf_80000008_eax >> 16) & 0xff;
    bits.guest = guest != 0 ? guest : supported_guest_leaf_80000008_eax & 0xff;
    if (sev && __get_cpuid(0x8000001f, &eax, &ebx, &ecx, &edx)) bits.sev_reduction = (ebx >> 6) & 0x3f;
    return bits;
}

Result<uint64_t> build_page_tables(std::span<std::byte> area, uint64_t area_gpa, std::span<const PageRange> ranges,
                                   bool gib_pages) {
    if (area.size() < kPage || area.size() % kPage != 0 || area_gpa % kPage != 0)
        return fail("mirror page tables: area must be whole pages");
    std::memset(area.data(), 0, area.size());
    size_t pages_used = 1;  // page 0: PML4
    auto entry = [&](uint64_t table_gpa, unsigned index) -> std::byte* {
        return area.data() + (table_gpa - area_gpa) + index * 8;
    };
    // The table an entry points to, allocating a zeroed page on first use.
    auto next_table = [&](uint64_t table_gpa, unsigned index) -> std::optional<uint64_t> {
        uint64_t v;
        std::memcpy(&v, entry(table_gpa, index), 8);
        if (v & kPresent) return v & kAddrMask;
        if (pages_used * kPage >= area.size()) return std::nullopt;
        uint64_t gpa = area_gpa + pages_used++ * kPage;
        v = gpa | kPresent | kWritable;
        std::memcpy(entry(table_gpa, index), &v, 8);
        return gpa;
    };
    const uint64_t page = gib_pages ? (1ull << 30) : (2ull << 20);
    for (const auto& r : ranges) {
        if (r.length == 0) continue;
        if (r.va >= kVirtLimit || r.length > kVirtLimit - r.va)
            return fail("mirror page tables: range beyond the canonical lower half");
        if (r.pa >= kPhysLimit || r.length > kPhysLimit - r.pa)
            return fail("mirror page tables: range beyond 52-bit physical space");
        if ((r.va ^ r.pa) & (page - 1)) return fail("mirror page tables: va and pa not congruent");
        uint64_t va = r.va & ~(page - 1);
        uint64_t pa = r.pa & ~(page - 1);
        uint64_t end = r.va + r.length;  // <= 2^47, no overflow
        for (; va < end; va += page, pa += page) {
            auto pdpt = next_table(area_gpa, (va >> 39) & 511);
            if (!pdpt) return fail("mirror page tables: out of page-table space");
            uint64_t leaf = pa | kPresent | kWritable | kHuge;
            if (gib_pages) {
                std::memcpy(entry(*pdpt, (va >> 30) & 511), &leaf, 8);
                continue;
            }
            auto pd = next_table(*pdpt, (va >> 30) & 511);
            if (!pd) return fail("mirror page tables: out of page-table space");
            std::memcpy(entry(*pd, (va >> 21) & 511), &leaf, 8);
        }
    }
    return area_gpa;
}

std::optional<uint64_t> translate(std::span<const std::byte> area, uint64_t area_gpa, uint64_t va) {
    uint64_t table = area_gpa;
    const unsigned shifts[] = {39, 30, 21};
    for (unsigned level = 0; level < 3; ++level) {
        uint64_t off = table - area_gpa + ((va >> shifts[level]) & 511) * 8;
        if (table < area_gpa || off + 8 > area.size()) return std::nullopt;
        uint64_t v = read_entry(area, off);
        if (!(v & kPresent)) return std::nullopt;
        if (level > 0 && (v & kHuge)) {
            uint64_t size = 1ull << shifts[level];
            return (v & kAddrMask & ~(size - 1)) | (va & (size - 1));
        }
        table = v & kAddrMask;
    }
    return std::nullopt;  // 4 KiB leaves are never built
}

}  // namespace kite
