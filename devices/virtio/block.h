// virtio-blk (VIRTIO 1.2 section 5.2, device id 2) on a raw image file or block device: one request
// queue; IN, OUT, FLUSH, GET_ID, DISCARD and WRITE_ZEROES. Data moves between the image and guest
// memory through the BlockEngine (io_uring, or synchronous I/O where io_uring is unavailable).
//
// Every request is parsed from guest-controlled buffers: a malformed one completes with IOERR or UNSUPP
// in its status byte (the last device-writable byte), a chain without a status byte completes with used
// length 0. Nothing a request says reaches the image outside [0, capacity).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/fd.h"
#include "base/log_limit.h"
#include "devices/virtio/block_io.h"
#include "devices/virtio/device_queues.h"
#include "devices/virtio/virtio_device.h"

namespace kite {

struct BlockOptions {
    std::string path;
    bool read_only = false;
    std::string serial;        // GET_ID answer, at most 20 bytes used; empty: the image file name
    bool try_io_uring = true;  // false: always the synchronous engine
};

class BlockDevice final : public VirtioDevice {
public:
    static constexpr uint32_t kSectorSize = 512;
    static constexpr uint16_t kQueueSize = 256;
    // Largest single discard / write-zeroes, in sectors (1 GiB), advertised in the config space.
    static constexpr uint32_t kMaxDiscardSectors = 1u << 21;

    static Result<std::shared_ptr<BlockDevice>> open(const BlockOptions& options);

    uint64_t capacity_sectors() const { return capacity_; }

    uint32_t device_id() const override;
    uint64_t device_features() const override;
    std::vector<uint16_t> queue_max_sizes() const override { return {kQueueSize}; }
    void read_config(uint64_t offset, std::span<uint8_t> data) override;
    void write_config(uint64_t, std::span<const uint8_t>) override {}
    Result<void> activate(ActivateContext ctx) override;
    void reset() override;
    void quiesce() override;  // waits for the image I/O in flight and completes those requests

private:
    struct Pending {
        uint16_t head;
        GuestAddress status;
        uint32_t used_len;      // status byte included
        uint64_t expected = 0;  // bytes a read/write must transfer
    };

    BlockDevice(UniqueFd fd, uint64_t capacity, bool read_only, std::string serial, std::unique_ptr<BlockRing> ring);

    void process();
    // Parses one chain; either submits an op (completion later) or completes it at once.
    void handle(DescriptorChain& chain);
    void complete(uint16_t head, std::optional<GuestAddress> status, uint8_t status_value, uint32_t used_len);
    void on_done(uint64_t tag, int64_t result);

    UniqueFd fd_;
    uint64_t capacity_;  // sectors
    bool read_only_;
    std::string serial_;
    std::unique_ptr<BlockRing> ring_;  // null: synchronous I/O; outlives every engine_ made on it
    std::vector<uint8_t> config_;

    ActiveQueues active_;
    uint64_t features_ = 0;
    std::unique_ptr<BlockEngine> engine_;
    std::unordered_map<uint64_t, Pending> pending_;
    uint64_t next_tag_ = 0;
    bool in_process_ = false;  // batching: notify once at the end of process()
    LogLimit log_;
};

}  // namespace kite
