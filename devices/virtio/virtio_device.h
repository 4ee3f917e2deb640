// The contract between a virtio device and its transport (ARCHITECTURE.md example 5): the device knows
// features, config space and how to serve its queues; the transport (virtio-mmio, or virtio-pci for
// vhost-user devices) owns the register state machine, the kick eventfds and the interrupt eventfds.
// Built-in devices serve queues on the VMM thread; vhost-user devices hand the same kick fds and the
// transport's interrupt eventfds to their back-end.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "memory/address.h"
#include "memory/guest_memory.h"

namespace asio {
class io_context;
}

namespace kite {

// A queue as the driver configured it through the transport registers (guest-controlled values,
// validated by the transport against the device's maximum and guest RAM before activate()).
struct QueueConfig {
    uint16_t size = 0;
    bool ready = false;
    GuestAddress desc, avail, used;
};

// A VIRTIO shared memory region: `id` as the driver selects it with SHMSel, at guest address `base`.
struct ShmRegion {
    uint8_t id = 0;
    GuestAddress base;
    uint64_t size = 0;
};

// How a device tells the driver something happened. Implemented by the transport; callable from the VMM
// thread.
class VirtioInterrupt {
public:
    virtual ~VirtioInterrupt() = default;
    virtual void signal_used_queue(uint16_t queue) = 0;
    virtual void signal_config_change() = 0;
    // The device reached an impossible state: set DEVICE_NEEDS_RESET and send a config interrupt.
    virtual void needs_reset() = 0;
};

struct ActivateContext {
    GuestMemory& memory;
    std::vector<QueueConfig> queues;  // index = queue number; only ready queues are to be served
    std::vector<BorrowedFd> kick_fds;  // the transport's eventfds, one per queue, readable after a guest notify
    BorrowedFd irq_fd;                 // the transport's interrupt eventfd (an irqfd under KVM); none with call_fds
    VirtioInterrupt& interrupt;
    asio::io_context& io;             // the VMM thread's event loop
    uint64_t driver_features = 0;     // what the driver acknowledged
    // Restored from a snapshot: each queue continues at its used ring's idx in guest memory (the
    // snapshot was taken with every popped chain completed, see VirtioDevice::quiesce) instead of 0.
    bool restored = false;
    // The transport's eventfds, one per queue, that interrupt the driver for that queue (virtio-pci's
    // MSI-X vectors); empty under virtio-mmio, where irq_fd serves every queue.
    std::vector<BorrowedFd> call_fds{};
};

class VirtioDevice {
public:
    virtual ~VirtioDevice() = default;

    virtual uint32_t device_id() const = 0;             // VIRTIO device id (2 = block, 1 = net, ...)
    virtual uint64_t device_features() const = 0;       // offered features, VIRTIO_F_VERSION_1 included
    virtual std::vector<uint16_t> queue_max_sizes() const = 0;

    // Device config space. guest-controlled: offset and size; out-of-range reads return zeroes.
    virtual void read_config(uint64_t offset, std::span<uint8_t> data) = 0;
    virtual void write_config(uint64_t offset, std::span<const uint8_t> data) = 0;

    // Called on the VMM thread after the driver set DRIVER_OK. An error sets DEVICE_NEEDS_RESET.
    virtual Result<void> activate(ActivateContext ctx) = 0;
    // Called on the VMM thread when the driver writes status 0; drop every queue and mapping.
    virtual void reset() = 0;

    virtual std::vector<ShmRegion> shm_regions() const { return {}; }

    // Snapshot (VMM thread, vCPUs paused): completes every request in flight, so that every chain the
    // device popped is in its used ring and used.idx is where each queue continues after a restore.
    virtual void quiesce() {}

    // True for devices whose back-end signals the irqfd directly (vhost-user): the transport then reports
    // "used buffer" in InterruptStatus on every read, because it cannot see those interrupts itself.
    virtual bool interrupt_status_always_used() const { return false; }
};

}  // namespace kite
