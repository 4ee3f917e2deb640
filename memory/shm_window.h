// ShmWindow: the host side of one VIRTIO shared memory region. The whole window is reserved in the
// VMM's address space up front (PROT_NONE, no memory behind it) so no unrelated mmap can land inside;
// a vhost-user back-end then maps pieces of its own fds into it (SHMEM_MAP) and takes them out again
// (SHMEM_UNMAP), which puts the range back to the PROT_NONE reservation.
//
// Every map/unmap request is validated here (see docs/VHOST_USER.md "Rules a front-end must enforce"):
// the parameters come from the back-end and are hostile. A refused request changes nothing.
//
// The VMM makes mappings guest-visible with one KVM memslot per mapping, driven by the observer; holes
// in the window have no memslot.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "memory/error.h"
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
    // Called with added=true after a mapping is in place, and with added=false before it goes (unmap,
    // clear, destruction), so a memslot never points at host memory that is being replaced. It must not
    // call back into this window.
    using Observer = std::function<void(const Mapping&, bool added)>;

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
    // existing mapping, too many mappings, or mmap failing (the range is then reserved again).
    Result<void> map(uint64_t shm_offset, int fd, uint64_t fd_offset, uint64_t len, bool writable);
    // Removes the mapping that is exactly [shm_offset, shm_offset + len) and reserves the range again.
    Result<void> unmap(uint64_t shm_offset, uint64_t len);
    // Removes every mapping (device reset, back-end disconnect).
    void clear();

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
    void notify(const Mapping& mapping, bool added) {
        if (observer_) observer_(mapping, added);
    }

    HostMapping reservation_;
    std::vector<Mapping> mappings_;
    size_t max_mappings_ = 0;
    Observer observer_;
};

}  // namespace kite
