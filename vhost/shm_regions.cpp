#include "vhost/shm_regions.h"

#include <fmt/format.h>

namespace kite::vhost {

Result<void> ShmWindowTable::add_region(uint8_t shmid, uint64_t size) {
    if (windows_.contains(shmid)) return fail(fmt::format("shm region {} exists already", shmid));
    auto window = ShmWindow::reserve(size);
    if (!window) return fail(fmt::format("shm region {}: {}", shmid, window.error().message));
    windows_.emplace(shmid, std::make_unique<ShmWindow>(std::move(*window)));
    return {};
}

ShmWindow* ShmWindowTable::window(uint8_t shmid) const {
    auto it = windows_.find(shmid);
    return it == windows_.end() ? nullptr : it->second.get();
}

std::optional<uint64_t> ShmWindowTable::region_size(uint8_t shmid) const {
    auto* w = window(shmid);
    if (w == nullptr) return std::nullopt;
    return w->size();
}

Result<void> ShmWindowTable::map(uint8_t shmid, uint64_t shm_offset, BorrowedFd fd, uint64_t fd_offset, uint64_t len,
                                 bool writable) {
    auto* w = window(shmid);
    if (w == nullptr) return fail(fmt::format("no shm region {}", shmid));
    return w->map(shm_offset, fd.get(), fd_offset, len, writable);
}

Result<void> ShmWindowTable::unmap(uint8_t shmid, uint64_t shm_offset, uint64_t len) {
    auto* w = window(shmid);
    if (w == nullptr) return fail(fmt::format("no shm region {}", shmid));
    return w->unmap(shm_offset, len);
}

void ShmWindowTable::clear() {
    for (auto& [id, window] : windows_) window->clear();
}

}  // namespace kite::vhost
