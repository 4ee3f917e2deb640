#include "vhost/config_space.h"

#include <algorithm>
#include <cstring>

#include "vhost/protocol.h"

namespace kite::vhost {

void ConfigSpace::read(uint64_t offset, std::span<uint8_t> data) const {
    std::fill(data.begin(), data.end(), 0);
    std::lock_guard lock(mutex_);
    if (offset >= bytes_.size()) return;
    size_t n = std::min<size_t>(data.size(), bytes_.size() - offset);
    std::memcpy(data.data(), bytes_.data() + offset, n);
}

bool ConfigSpace::write(uint64_t offset, std::span<const uint8_t> data) {
    // A space built here (virtio-fs) or one the back-end does not serve (no CONFIG) takes no writes.
    if (!served()) return false;
    if (offset > kMaxConfigSize || data.size() > kMaxConfigSize - offset) return false;
    std::lock_guard lock(mutex_);
    if (offset + data.size() > bytes_.size()) bytes_.resize(offset + data.size());
    std::memcpy(bytes_.data() + offset, data.data(), data.size());
    return true;
}

void ConfigSpace::replace(std::vector<uint8_t> bytes) {
    std::lock_guard lock(mutex_);
    bytes_ = std::move(bytes);
}

std::vector<uint8_t> ConfigSpace::bytes() const {
    std::lock_guard lock(mutex_);
    return bytes_;
}

}  // namespace kite::vhost
