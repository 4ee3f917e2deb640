// A split virtqueue (VIRTIO 1.2 section 2.7) seen from the device side, over GuestMemory.
//
// Memory ordering: the driver publishes avail.idx after writing ring entries and descriptors, so the
// avail.idx load is an acquire; the device publishes used.idx after writing the used element, so that
// store is a release. Before deciding whether to notify (reading used_event or avail.flags) and before
// re-checking avail.idx after publishing avail_event, a full fence orders the preceding store against
// the load, pairing with the driver's full barrier between its own store and load (virtio_mb).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "base/error.h"
#include "devices/virtio/descriptor_chain.h"
#include "devices/virtio/virtio_device.h"
#include "memory/guest_memory.h"

namespace kite {

class Queue {
public:
    // Checks a driver-supplied configuration: size a non-zero power of two no larger than max_size,
    // descriptor table 16-byte, avail ring 2-byte and used ring 4-byte aligned, all three inside RAM and
    // not overlapping each other.
    static Result<void> validate(GuestMemory& memory, const QueueConfig& config, uint16_t max_size);
    // driver_features selects EVENT_IDX and INDIRECT_DESC handling.
    static Result<Queue> create(GuestMemory& memory, const QueueConfig& config, uint16_t max_size,
                                uint64_t driver_features);

    // The next available chain, or nullopt if there is none or the queue is broken. Before returning
    // nullopt for an empty queue it publishes avail_event (EVENT_IDX) and re-checks, so the driver is
    // guaranteed to notify for the next buffer it makes available.
    std::optional<DescriptorChain> pop();
    // Puts a chain back (for a device that popped one it cannot use yet).
    void undo_pop() { --next_avail_; }

    // Returns a chain to the driver with `len` bytes written into its device-writable buffers.
    Result<void> add_used(uint16_t head, uint32_t len);

    // True if the driver wants an interrupt for what was added since the previous call (EVENT_IDX
    // used_event, else VIRTQ_AVAIL_F_NO_INTERRUPT). False if nothing was added.
    bool should_notify();

    // A driver bug made the queue unusable (avail.idx more than a queue size ahead, a head index out of
    // range, rings no longer in RAM): the device should call VirtioInterrupt::needs_reset().
    bool is_broken() const { return broken_.has_value(); }
    const std::optional<Error>& broken_reason() const { return broken_; }

    uint16_t size() const { return config_.size; }
    // Free-running ring indexes (snapshot, vhost-user SET/GET_VRING_BASE).
    uint16_t next_avail() const { return next_avail_; }
    uint16_t next_used() const { return next_used_; }
    void set_next_avail(uint16_t index) { next_avail_ = index; }
    void set_next_used(uint16_t index) {
        next_used_ = index;
        used_at_last_notify_check_ = index;
    }
    // A queue restored from a snapshot continues where the used ring says: next avail and next used
    // both become used.idx as it is in guest memory (guest-controlled; a value more than a queue size
    // behind avail.idx breaks the queue at the next pop(), as any driver bug does).
    Result<uint16_t> start_at_used_idx();

private:
    Queue(GuestMemory& memory, const QueueConfig& config, uint64_t driver_features);

    std::optional<uint16_t> load_avail_idx();
    void mark_broken(std::string reason);
    void publish_avail_event();

    GuestMemory* memory_;
    QueueConfig config_;
    bool event_idx_;
    bool indirect_;
    uint16_t next_avail_ = 0;
    uint16_t next_used_ = 0;
    uint16_t used_at_last_notify_check_ = 0;
    std::optional<Error> broken_;
};

}  // namespace kite
