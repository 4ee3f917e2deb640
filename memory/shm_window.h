// ShmWindow: the host side of one VIRTIO shared memory region. The whole window is reserved in the
// VMM's address space up front (PROT_NONE, no memory behind it) so no unrelated mmap can land inside;
// a vhost-user back-end then maps pieces of its own fds into it (SHMEM_MAP) and takes them out again
// (SHMEM_UNMAP), which replaces the range with read-only private zero-filled memory: the back-end's file
// is gone from it, a guest view of the range the VMM keeps for the next mapping there reads zeroes, and
// the range costs no memory whatever the guest writes (see vmm/kvm/shm_memslots.h). clear() and
// destruction put the whole window back to the PROT_NONE reservation.
//
// Every map/unmap request is validated here (see docs/VHOST_USER.md "Rules a front-end must enforce"):
// the parameters come from the back-end and are hostile. A refused request changes nothing.
//
// The VMM makes mappings guest-visible with KVM memslots, driven by the observer (vmm/kvm/shm_memslots.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "base/error.h"
#include "memory/host_mapping.h"

namespace kite {

class ShmWindow {
public:
    struct Mapping {
        uint64_t offset;  // from the start of the window
        uint64_t len;
        std::byte* host;  // host_base() + offset
        bool writable;
    };
    enum class Change {
        kMapping,   // the mapping is about to replace what the range holds (before mmap)
        kMapped,    // the mapping is in place
        kUnmapped,  // the mapping is about to be replaced by read-only zero-filled memory (unmap)
        kReleased,  // [offset, offset + len) is about to become inaccessible (clear, destruction): the
                    // observer must drop every guest view of it
    };
    // Told of every change, so no guest view ever points at host memory that is inaccessible. kReleased
    // covers the whole window and comes once per clear() after anything was mapped. It must not call back
    // into this window.
    using Observer = std::function<void(const Mapping&, Change)>;

    // Every mapping costs the VMM a VMA or two and the VM a KVM memslot (KVM allows ~32k per VM), so a
    // back-end may not create mappings without bound.
    static constexpr size_t kDefaultMaxMappings = 1024;

    // Reserves `size` bytes (non-zero, page aligned), 2 MiB aligned in the host when size allows.
    // map() refuses a request once the window holds max_mappings mappings.
    static Result<ShmWindow> reserve(uint64_t size, size_t max_mappings = kDefaultMaxMappings);

    ShmWindow(ShmWindow&& other) noexcept;
    ShmWindow& operator=(ShmWindow&& other) noexcept;
    ShmWindow(const ShmWindow&) = delete;
    ShmWindow& operator=(const ShmWindow&) = delete;
    // clear() (so the observer sees every removal), then releases the reservation.
    ~ShmWindow();

    // Maps [fd_offset, fd_offset + len) of fd at [shm_offset, shm_offset + len) of the window,
    // MAP_SHARED, read-only unless writable. fd is borrowed: the mapping keeps the file alive, the caller
    // still closes fd. Refused: fd < 0, len 0, any of shm_offset/fd_offset/len not page aligned,
    // shm_offset + len or fd_offset + len overflowing, the range beyond the window, overlap with an
    // existing mapping, too many mappings, a range past the end of a regular file, or mmap failing (the
    // range then holds what it held before: the file is mapped elsewhere first, then moved in atomically).
    Result<void> map(uint64_t shm_offset, int fd, uint64_t fd_offset, uint64_t len, bool writable);
    // Removes the mapping that is exactly [shm_offset, shm_offset + len); the range then holds read-only
    // private zero-filled memory.
    Result<void> unmap(uint64_t shm_offset, uint64_t len);
    // Removes every mapping and reserves the whole window again (device reset, back-end disconnect).
    void clear();
    // Replaces [at, at + len), inside a window, with what unmap leaves: read-only zero-filled memory.
    // For ShmMemslots::repair, which must take a shrunk file's pages away without the window's books.
    static bool zero_fill(std::byte* at, uint64_t len);

    // Sorted by offset, never overlapping.
    const std::vector<Mapping>& mappings() const { return mappings_; }
    void set_observer(Observer observer) { observer_ = std::move(observer); }
    std::byte* host_base() const { return reservation_.data(); }
    uint64_t size() const { return reservation_.size(); }

private:
    ShmWindow(HostMapping reservation, size_t max_mappings)
        : reservation_(std::move(reservation)), max_mappings_(max_mappings) {}
    // Shared checks of map and unmap: page alignment, overflow, inside the window.
    Result<void> check_range(const char* what, uint64_t shm_offset, uint64_t len) const;
    void notify(const Mapping& mapping, Change change) {
        if (observer_) observer_(mapping, change);
    }

    HostMapping reservation_;
    std::vector<Mapping> mappings_;
    size_t max_mappings_ = 0;
    bool used_ = false;  // something was mapped since the last clear(): parts may hold zero-filled memory
    Observer observer_;
};

}  // namespace kite
