#include "memory/guest_ram.h"

#include <algorithm>
#include <string>

#include "base/size.h"

namespace kite {

namespace {

constexpr uint64_t kPageSize = 4096;

std::string range_text(GuestAddress gpa, uint64_t size) {
    return "[" + hex_text(gpa.value()) + ", +" + format_size(size) + ")";
}

}  // namespace

Result<size_t> GuestRam::add_block(uint64_t size, HugePages mode) {
    size_t index = blocks_.size();
    auto ram = RamBlock::create(size, RamOffset(ram_size_), mode, "kite-ram" + std::to_string(index));
    if (!ram) return std::unexpected(std::move(ram.error()));
    blocks_.push_back(Block{std::make_unique<RamBlock>(std::move(*ram)), std::nullopt});
    ram_size_ += size;  // cannot wrap: create() checked offset + size
    return index;
}

Result<void> GuestRam::map_block(size_t block, GuestAddress gpa) {
    if (block >= blocks_.size()) return fail("RAM block " + std::to_string(block) + " does not exist");
    Block& b = blocks_[block];
    if (b.gpa) return fail("RAM block " + std::to_string(block) + " is already mapped at " + hex_text(b.gpa->value()));
    uint64_t size = b.ram->size();
    if (!gpa.is_aligned(kPageSize))
        return fail("guest address " + hex_text(gpa.value()) + " for RAM block " + std::to_string(block) +
                    " is not 4 KiB aligned");
    if (!range_fits(gpa.value(), size))
        return fail("RAM block " + std::to_string(block) + " at " + range_text(gpa, size) +
                    " wraps past the end of the guest address space");

    auto next = std::upper_bound(mapped_.begin(), mapped_.end(), gpa,
                                 [](GuestAddress a, const Mapped& m) { return a < m.gpa; });
    auto clash = [&](const Mapped& m) { return ranges_overlap(gpa.value(), size, m.gpa.value(), m.size); };
    const Mapped* other = nullptr;
    if (next != mapped_.end() && clash(*next)) other = &*next;
    if (next != mapped_.begin() && clash(*std::prev(next))) other = &*std::prev(next);
    if (other)
        return fail("RAM block " + std::to_string(block) + " at " + range_text(gpa, size) +
                    " overlaps RAM block " + std::to_string(other->block) + " at " +
                    range_text(other->gpa, other->size));

    mapped_.insert(next, Mapped{gpa, size, block});
    b.gpa = gpa;
    return {};
}

Result<void> GuestRam::unmap_block(size_t block) {
    if (block >= blocks_.size()) return fail("RAM block " + std::to_string(block) + " does not exist");
    Block& b = blocks_[block];
    if (!b.gpa) return fail("RAM block " + std::to_string(block) + " is not mapped");
    std::erase_if(mapped_, [&](const Mapped& m) { return m.block == block; });
    b.gpa.reset();
    return {};
}

std::vector<MappedRegion> GuestRam::regions() const {
    std::vector<MappedRegion> out;
    out.reserve(mapped_.size());
    for (const Mapped& m : mapped_) {
        const RamBlock& ram = *blocks_[m.block].ram;
        out.push_back(MappedRegion{m.block, m.gpa, m.size, ram.host(), ram.fd(), ram.ram_offset()});
    }
    return out;
}

std::vector<GuestRam::Mapped>::const_iterator GuestRam::find_mapped(GuestAddress addr, bool end_ok) const {
    // The last region starting at or below addr is the only one that can contain it (no overlaps).
    auto it = std::upper_bound(mapped_.begin(), mapped_.end(), addr,
                               [](GuestAddress a, const Mapped& m) { return a < m.gpa; });
    if (it == mapped_.begin()) return mapped_.end();
    --it;
    uint64_t off = addr.value() - it->gpa.value();
    if (off < it->size || (end_ok && off == it->size)) return it;
    return mapped_.end();
}

std::optional<std::span<std::byte>> GuestRam::span(GuestAddress addr, uint64_t len) {
    auto it = find_mapped(addr, len == 0);
    if (it == mapped_.end()) return std::nullopt;
    uint64_t off = addr.value() - it->gpa.value();
    if (len > it->size - off) return std::nullopt;  // overflow-safe: off <= size
    return std::span<std::byte>(blocks_[it->block].ram->host() + off, len);
}

uint64_t GuestRam::contiguous_from(GuestAddress addr) {
    auto it = find_mapped(addr, false);
    if (it == mapped_.end()) return 0;
    return it->size - (addr.value() - it->gpa.value());
}

std::optional<size_t> GuestRam::find_block(RamOffset offset, bool end_ok) const {
    auto it = std::upper_bound(blocks_.begin(), blocks_.end(), offset,
                               [](RamOffset o, const Block& b) { return o < b.ram->ram_offset(); });
    if (it == blocks_.begin()) return std::nullopt;
    --it;
    uint64_t off = offset.value() - it->ram->ram_offset().value();
    if (off < it->ram->size() || (end_ok && off == it->ram->size()))
        return static_cast<size_t>(it - blocks_.begin());
    return std::nullopt;
}

std::optional<std::span<std::byte>> GuestRam::ram_span(RamOffset offset, uint64_t len) {
    auto index = find_block(offset, len == 0);
    if (!index) return std::nullopt;
    const RamBlock& ram = *blocks_[*index].ram;
    uint64_t off = offset.value() - ram.ram_offset().value();
    if (len > ram.size() - off) return std::nullopt;
    return std::span<std::byte>(ram.host() + off, len);
}

std::optional<GuestAddress> GuestRam::gpa_of(RamOffset offset) const {
    auto index = find_block(offset, false);
    if (!index) return std::nullopt;
    const Block& b = blocks_[*index];
    if (!b.gpa) return std::nullopt;
    return GuestAddress(b.gpa->value() + (offset.value() - b.ram->ram_offset().value()));
}

std::optional<RamOffset> GuestRam::ram_offset_of(GuestAddress addr) const {
    auto it = find_mapped(addr, false);
    if (it == mapped_.end()) return std::nullopt;
    const RamBlock& ram = *blocks_[it->block].ram;
    return RamOffset(ram.ram_offset().value() + (addr.value() - it->gpa.value()));
}

}  // namespace kite
