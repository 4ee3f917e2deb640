// The device config space of a vhost-user device as the driver sees it: a cache, because the transport
// reads it on vCPU threads and the back-end can only be asked from the VMM thread. Filled at the handshake
// (GET_CONFIG, or a space built by the device kind), refreshed on CONFIG_CHANGE_MSG; a driver write changes
// the cache at once so the driver reads back what it wrote (SET_CONFIG follows from the VMM thread).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

namespace kite::vhost {

class ConfigSpace {
public:
    // guest-controlled: offset and size; bytes outside the space read as zero.
    void read(uint64_t offset, std::span<uint8_t> data) const;
    // guest-controlled: offset and size. Stores a driver write; false (nothing stored) when the back-end does
    // not serve the space or the range lies beyond the largest config space.
    bool write(uint64_t offset, std::span<const uint8_t> data);
    void replace(std::vector<uint8_t> bytes);
    std::vector<uint8_t> bytes() const;

    // The back-end serves the space (CONFIG negotiated, no space of our own): SET_CONFIG is allowed.
    bool served() const { return served_.load(std::memory_order_relaxed); }
    void set_served(bool served) { served_.store(served, std::memory_order_relaxed); }

private:
    // Written on the VMM thread (GET_CONFIG) and by the driver on a vCPU thread (write), read by the
    // transport from either.
    mutable std::mutex mutex_;
    std::vector<uint8_t> bytes_;
    // Relaxed: set on the VMM thread at a handshake, read anywhere; no other memory depends on it.
    std::atomic<bool> served_{false};
};

}  // namespace kite::vhost
