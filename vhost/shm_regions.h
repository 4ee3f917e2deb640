// The front-end's VIRTIO shared memory regions of one vhost-user device, indexed by shmid, as the backend
// channel sees them. ShmRegionTable is the small interface the channel maps into; ShmWindowTable is the
// real one: one memory/ShmWindow per region, each owned through its own unique_ptr so a window never moves
// (no pointer into a container that is later reallocated) and is freed when the table (the device) goes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>

#include "base/error.h"
#include "base/fd.h"
#include "memory/shm_window.h"

namespace kite::vhost {

// At most this many shared memory regions per device, whatever GET_SHMEM_CONFIG declares (the wire has
// room for 256), and the bound of the `shm` config key.
inline constexpr size_t kMaxShmRegionsPerDevice = 16;

class ShmRegionTable {
public:
    virtual ~ShmRegionTable() = default;
    // Size of region `shmid`, or nullopt if the device has no such region.
    virtual std::optional<uint64_t> region_size(uint8_t shmid) const = 0;
    // Maps [fd_offset, fd_offset + len) of fd at [shm_offset, shm_offset + len) of the region.
    // Refuses an unknown shmid and everything ShmWindow refuses (ranges, overlaps).
    virtual Result<void> map(uint8_t shmid, uint64_t shm_offset, BorrowedFd fd, uint64_t fd_offset, uint64_t len,
                             bool writable) = 0;
    // Removes the mapping that is exactly [shm_offset, shm_offset + len).
    virtual Result<void> unmap(uint8_t shmid, uint64_t shm_offset, uint64_t len) = 0;
    // Drops every mapping of every region (device reset, back-end disconnect).
    virtual void clear() = 0;
};

// Each mapping and each range it leaves behind costs the VMM address-space pieces (VMAs): a SHMEM_UNMAP
// leaves zero-filled memory, and so may a SHMEM_MAP that failed after it reached the window. Past
// vm.max_map_count every mmap of the VMM fails, so the table bounds, for the whole device, the count of
// live mappings plus the runs of touched ranges (what was mapped, or a failed map may have touched,
// since the last clear()): the VMAs inside the windows stay below twice that. A remap of a touched range
// costs nothing more (DAX reuses its ranges); a map that would go past the bound is refused before it
// touches anything, until clear().
class ShmWindowTable final : public ShmRegionTable {
public:
    static constexpr size_t kDefaultMaxPieces = 1024;
    explicit ShmWindowTable(size_t max_pieces = kDefaultMaxPieces) : max_pieces_(max_pieces) {}

    // Reserves a window of `size` bytes (page multiple, non-zero) for `shmid`; an id can be added once.
    Result<void> add_region(uint8_t shmid, uint64_t size);
    // The window of `shmid` (stable for the table's lifetime), or nullptr.
    ShmWindow* window(uint8_t shmid) const;

    std::optional<uint64_t> region_size(uint8_t shmid) const override;
    Result<void> map(uint8_t shmid, uint64_t shm_offset, BorrowedFd fd, uint64_t fd_offset, uint64_t len,
                     bool writable) override;
    Result<void> unmap(uint8_t shmid, uint64_t shm_offset, uint64_t len) override;
    void clear() override;

    // Live mappings plus runs of touched ranges, over every region (see above).
    size_t pieces() const;
    size_t max_pieces() const { return max_pieces_; }

private:
    struct Region {
        std::unique_ptr<ShmWindow> window;
        std::map<uint64_t, uint64_t> touched;  // start -> end, disjoint and not adjacent (merged)
    };
    // The touched runs of `region` if [offset, offset + len) were added.
    static size_t runs_with(const Region& region, uint64_t offset, uint64_t len);
    static void touch(Region& region, uint64_t offset, uint64_t len);

    std::map<uint8_t, Region> regions_;
    size_t max_pieces_;
};

}  // namespace kite::vhost
