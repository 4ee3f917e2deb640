// The front-end's VIRTIO shared memory regions of one vhost-user device, indexed by shmid, as the backend
// channel sees them. ShmRegionTable is the small interface the channel maps into; ShmWindowTable is the
// real one: one memory/ShmWindow per region, each owned through its own unique_ptr so a window never moves
// (no pointer into a container that is later reallocated) and is freed when the table (the device) goes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>

#include "base/error.h"
#include "base/fd.h"
#include "memory/shm_window.h"

namespace kite::vhost {

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

class ShmWindowTable final : public ShmRegionTable {
public:
    // Reserves a window of `size` bytes (page multiple, non-zero) for `shmid`; an id can be added once.
    Result<void> add_region(uint8_t shmid, uint64_t size);
    // The window of `shmid` (stable for the table's lifetime), or nullptr.
    ShmWindow* window(uint8_t shmid) const;

    std::optional<uint64_t> region_size(uint8_t shmid) const override;
    Result<void> map(uint8_t shmid, uint64_t shm_offset, BorrowedFd fd, uint64_t fd_offset, uint64_t len,
                     bool writable) override;
    Result<void> unmap(uint8_t shmid, uint64_t shm_offset, uint64_t len) override;
    void clear() override;

private:
    std::map<uint8_t, std::unique_ptr<ShmWindow>> windows_;
};

}  // namespace kite::vhost
