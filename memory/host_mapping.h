// HostMapping: owns one region of the VMM's address space obtained from mmap and unmaps it exactly
// once. Move-only. RamBlock and ShmWindow hold their mappings through it so no error path leaks one.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <utility>

namespace kite {

class HostMapping {
public:
    HostMapping() = default;
    // Takes ownership of [addr, addr + len), which must come from a successful mmap.
    HostMapping(void* addr, uint64_t len) : addr_(static_cast<std::byte*>(addr)), len_(len) {}
    HostMapping(HostMapping&& other) noexcept
        : addr_(std::exchange(other.addr_, nullptr)), len_(std::exchange(other.len_, 0)) {}
    HostMapping& operator=(HostMapping&& other) noexcept {
        if (this != &other) {
            reset();
            addr_ = std::exchange(other.addr_, nullptr);
            len_ = std::exchange(other.len_, 0);
        }
        return *this;
    }
    HostMapping(const HostMapping&) = delete;
    HostMapping& operator=(const HostMapping&) = delete;
    ~HostMapping() { reset(); }

    std::byte* data() const { return addr_; }
    uint64_t size() const { return len_; }
    explicit operator bool() const { return addr_ != nullptr; }

    void reset() {
        if (addr_ != nullptr) ::munmap(addr_, len_);
        addr_ = nullptr;
        len_ = 0;
    }

private:
    std::byte* addr_ = nullptr;
    uint64_t len_ = 0;
};

}  // namespace kite
