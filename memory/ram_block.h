// RamBlock: one piece of guest RAM in host memory, backed by a memfd so it can be shared with
// vhost-user back-ends (they mmap the same fd) and mapped into the guest by a KVM memslot.
// Each block has a RAM offset: its place in the VMM's RAM, independent of where (or whether) the
// guest sees it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/error.h"
#include "base/fd.h"
#include "memory/address.h"
#include "memory/host_mapping.h"

namespace kite {

enum class HugePages {
    None,         // ordinary 4 KiB shmem pages
    Auto,         // MADV_HUGEPAGE where the kernel has transparent huge pages, else 4 KiB pages (no error)
    Transparent,  // shmem pages with MADV_HUGEPAGE (the host's shmem_enabled setting decides); an error
                  // if the kernel has no transparent huge pages
    Hugetlbfs2M,  // 2 MiB hugetlbfs pages, reserved when the block is created
};

class RamBlock {
public:
    // A zero-filled block of `size` bytes (a non-zero multiple of 4 KiB; of 2 MiB for Hugetlbfs2M).
    // `name` labels the memfd (visible in /proc/<pid>/fd and in error messages).
    static Result<RamBlock> create(uint64_t size, RamOffset offset, HugePages mode, std::string_view name);

    RamBlock(RamBlock&&) noexcept = default;
    RamBlock& operator=(RamBlock&&) noexcept = default;
    RamBlock(const RamBlock&) = delete;
    RamBlock& operator=(const RamBlock&) = delete;
    ~RamBlock() = default;  // unmaps, then closes the memfd (members in reverse order)

    std::byte* host() const { return mapping_.data(); }
    uint64_t size() const { return mapping_.size(); }
    int fd() const { return fd_.get(); }
    RamOffset ram_offset() const { return offset_; }
    HugePages huge_pages() const { return mode_; }

private:
    RamBlock(UniqueFd fd, HostMapping mapping, RamOffset offset, HugePages mode)
        : fd_(std::move(fd)), mapping_(std::move(mapping)), offset_(offset), mode_(mode) {}

    UniqueFd fd_;
    HostMapping mapping_;
    RamOffset offset_;
    HugePages mode_ = HugePages::None;
};

}  // namespace kite
