// Helpers the built-in devices share for serving their queues on the VMM thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "base/fd_watcher.h"
#include "base/log_limit.h"
#include "devices/virtio/queue.h"
#include "devices/virtio/virtio_device.h"

namespace kite {

// One queue of an active device: the ring and the watcher of its kick eventfd.
struct ServedQueue {
    Queue queue;
    std::unique_ptr<FdWatcher> kick;
    int kick_fd = -1;  // borrowed from the transport

    // Chains one pass may serve. A guest can keep a queue busy forever (a device write landing on the
    // avail ring, say), so a pass stops after a queue's worth and kick_again() schedules the next pass
    // behind whatever else the VMM thread has to do.
    int budget() const { return queue.size(); }
    void kick_again() const;
};

// Builds the ready queues of ctx (nullopt for queues the driver left unused) and watches their kick fds,
// calling on_kick(index) on the VMM thread after each notification. A restored ctx starts each queue at
// its used ring's idx (Queue::start_at_used_idx).
Result<std::vector<std::optional<ServedQueue>>> serve_queues(const ActivateContext& ctx,
                                                             std::span<const uint16_t> max_sizes,
                                                             std::function<void(uint16_t)> on_kick);

// Signals the driver if the queue's notification rules want it, and flags DEVICE_NEEDS_RESET if the
// queue broke. Call after handing back a batch of chains.
void notify_or_flag(Queue& queue, uint16_t index, VirtioInterrupt& interrupt);

}  // namespace kite
