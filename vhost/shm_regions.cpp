#include "vhost/shm_regions.h"

#include <fmt/format.h>

namespace kite::vhost {

Result<void> ShmWindowTable::add_region(uint8_t shmid, uint64_t size) {
    if (regions_.contains(shmid)) return fail(fmt::format("shm region {} exists already", shmid));
    if (regions_.size() >= kMaxShmRegionsPerDevice)
        return fail(fmt::format("shm region {}: a device has at most {} regions", shmid, kMaxShmRegionsPerDevice));
    auto window = ShmWindow::reserve(size);
    if (!window) return fail(fmt::format("shm region {}: {}", shmid, window.error().message));
    regions_.emplace(shmid, Region{std::make_unique<ShmWindow>(std::move(*window)), {}});
    return {};
}

ShmWindow* ShmWindowTable::window(uint8_t shmid) const {
    auto it = regions_.find(shmid);
    return it == regions_.end() ? nullptr : it->second.window.get();
}

std::optional<uint64_t> ShmWindowTable::region_size(uint8_t shmid) const {
    auto* w = window(shmid);
    if (w == nullptr) return std::nullopt;
    return w->size();
}

size_t ShmWindowTable::runs_with(const Region& region, uint64_t offset, uint64_t len) {
    const uint64_t end = offset + len;  // the window checks the range; an invalid one is never touched
    // Runs that touch [offset, end) (overlapping or adjacent) merge with it into one.
    size_t merged = 0;
    auto it = region.touched.upper_bound(end);
    while (it != region.touched.begin()) {
        --it;
        if (it->second < offset) break;
        ++merged;
    }
    return region.touched.size() - merged + 1;
}

void ShmWindowTable::touch(Region& region, uint64_t offset, uint64_t len) {
    uint64_t start = offset, end = offset + len;
    auto it = region.touched.upper_bound(end);
    while (it != region.touched.begin()) {
        auto prev = std::prev(it);
        if (prev->second < start) break;
        start = std::min(start, prev->first);
        end = std::max(end, prev->second);
        it = region.touched.erase(prev);
    }
    region.touched.emplace(start, end);
}

size_t ShmWindowTable::pieces() const {
    size_t n = 0;
    for (const auto& [id, region] : regions_) n += region.window->mappings().size() + region.touched.size();
    return n;
}

Result<void> ShmWindowTable::map(uint8_t shmid, uint64_t shm_offset, BorrowedFd fd, uint64_t fd_offset, uint64_t len,
                                 bool writable) {
    // guest-controlled (back-end): every parameter.
    auto it = regions_.find(shmid);
    if (it == regions_.end()) return fail(fmt::format("no shm region {}", shmid));
    Region& region = it->second;
    uint64_t end;
    const bool valid_range = !__builtin_add_overflow(shm_offset, len, &end) && len != 0 && end <= region.window->size();
    if (valid_range) {
        size_t after = pieces() - region.touched.size() + runs_with(region, shm_offset, len) + 1;
        if (after > max_pieces_)
            return fail(fmt::format("shm region {}: map refused: the device's regions already hold {} mappings and "
                                    "touched ranges, at most {} until the device is reset",
                                    shmid, pieces(), max_pieces_));
    }
    auto mapped = region.window->map(shm_offset, fd.get(), fd_offset, len, writable);
    // A refusal (no system error) left the window alone; a failed mmap or mremap may have left the range
    // zero-filled, and a mapping stays touched after its unmap: count them.
    if (valid_range && (mapped || mapped.error().code != 0)) touch(region, shm_offset, len);
    return mapped;
}

Result<void> ShmWindowTable::unmap(uint8_t shmid, uint64_t shm_offset, uint64_t len) {
    auto* w = window(shmid);
    if (w == nullptr) return fail(fmt::format("no shm region {}", shmid));
    return w->unmap(shm_offset, len);
}

void ShmWindowTable::clear() {
    for (auto& [id, region] : regions_) {
        region.window->clear();
        region.touched.clear();
    }
}

}  // namespace kite::vhost
