// The virtio-mmio transport, version 2 (VIRTIO 1.2 section 4.2.2), with shared memory region registers.
//
// Threads: read()/write() run on vCPU threads; activate() and reset() of the device run on the VMM
// thread (posted to the io_context, in order); signal_* and needs_reset() are called by the device on
// the VMM thread. Register state is under mutex_; the mutex is never held while calling the device.
//
// Interrupts: the transport owns one eventfd (irq_fd()) and writes it to interrupt the guest. The VMM
// binds it to the transport's GSI with KVM_IRQFD; vhost-user back-ends get the same fd and write it
// directly. Notifications: one eventfd per queue (kick_fd(q)); the VMM registers each as a KVM
// ioeventfd at base + kQueueNotifyOffset, 4 bytes, datamatch q. A QueueNotify write that still reaches
// the transport (no ioeventfd) is forwarded by writing the eventfd.
//
// A device whose InterruptStatus always reports a used buffer (vhost-user: its back-end signals KVM
// directly, so Kite cannot tell) has nothing to clear when the driver acknowledges that bit alone, and
// Linux's driver does so once per interrupt. For such a device the transport also owns
// used_ack_sink_fd(), an eventfd nobody reads, which the VMM registers as a KVM ioeventfd at
// base + kInterruptAckOffset, 4 bytes, datamatch kInterruptUsedBuffer: KVM absorbs exactly that write,
// sparing the guest an exit to the VMM per interrupt. Any other value (a config change to acknowledge)
// still reaches write().
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "devices/bus_device.h"
#include "devices/virtio/log_limit.h"
#include "devices/virtio/virtio_device.h"
#include "memory/error.h"
#include "memory/fd.h"
#include "memory/guest_memory.h"

namespace kite {

class VirtioMmioTransport final : public BusDevice,
                                  public VirtioInterrupt,
                                  public std::enable_shared_from_this<VirtioMmioTransport> {
public:
    static constexpr uint64_t kQueueNotifyOffset = 0x50;
    static constexpr uint64_t kInterruptAckOffset = 0x64;
    static constexpr uint32_t kInterruptUsedBuffer = 1;
    static constexpr uint64_t kConfigOffset = 0x100;
    // Size of the MMIO window to register on the bus and describe in ACPI / virtio_mmio.device=.
    static constexpr uint64_t kWindowSize = 0x1000;
    static constexpr uint32_t kMagic = 0x74726976;     // "virt"
    static constexpr uint32_t kVendorId = 0x4554494b;  // "KITE" as little-endian bytes

    // Creates the kick and interrupt eventfds. The device's shared memory regions (if any) are reported
    // exactly as device->shm_regions() returns them: the VMM places them and tells the device.
    static Result<std::shared_ptr<VirtioMmioTransport>> create(std::shared_ptr<VirtioDevice> device,
                                                               GuestMemory& memory, asio::io_context& io);
    // Resets an active device: call on the VMM thread (or after the io_context stopped).
    ~VirtioMmioTransport() override;

    int kick_fd(unsigned queue) const { return queue < kick_fds_.size() ? kick_fds_[queue].get() : -1; }
    unsigned num_queues() const { return static_cast<unsigned>(kick_fds_.size()); }
    int irq_fd() const { return irq_fd_.get(); }
    // -1 unless the device's InterruptStatus always reports a used buffer (see the top of this file).
    int used_ack_sink_fd() const { return used_ack_sink_.get(); }
    VirtioDevice& device() { return *device_; }

    // BusDevice (vCPU threads). guest-controlled: offset, width and value.
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    // Snapshot (VMM thread, vCPUs paused): quiesces the device (requests in flight complete), then
    // returns the register state in a versioned byte format (layout in mmio_transport_state.cpp).
    std::vector<uint8_t> save_state();
    // Restore into a transport the driver has not touched (VMM thread, before the vCPUs run, guest
    // memory already restored). The bytes come from a file: everything is checked against this device
    // and guest memory first, and a bad blob is refused with the state left as it was. A device the
    // driver had set DRIVER_OK on is activated again, its queues continuing at their used rings' idx.
    Result<void> restore_state(std::span<const uint8_t> bytes);

    // VirtioInterrupt (VMM thread).
    void signal_used_queue(uint16_t queue) override;
    void signal_config_change() override;
    void needs_reset() override;

private:
    struct QueueState {
        uint16_t max_size = 0;
        QueueConfig config;
    };

    VirtioMmioTransport(std::shared_ptr<VirtioDevice> device, GuestMemory& memory, asio::io_context& io);

    uint32_t read_register(uint64_t offset);
    void write_register(uint64_t offset, uint32_t value);
    void write_queue_register(uint64_t offset, uint32_t value);
    void write_status(uint32_t value);
    void reset_locked();
    void post_activate_locked(bool restored = false);
    void trigger();

    std::shared_ptr<VirtioDevice> device_;
    GuestMemory& memory_;
    asio::io_context& io_;
    std::vector<UniqueFd> kick_fds_;
    UniqueFd irq_fd_;
    UniqueFd used_ack_sink_;
    LogLimit log_;

    std::mutex mutex_;  // guards everything below except the atomics
    uint32_t status_ = 0;
    uint32_t device_features_sel_ = 0;
    uint32_t driver_features_sel_ = 0;
    uint64_t driver_features_ = 0;
    uint32_t queue_sel_ = 0;
    uint32_t shm_sel_ = 0;
    std::vector<QueueState> queues_;
    bool device_active_ = false;  // activate() was posted since the last reset

    // Set by the device (VMM thread) and acked by the driver (vCPU thread): fetch_or in signal_* pairs
    // with the load in the InterruptStatus read and the fetch_and in the InterruptACK write.
    std::atomic<uint32_t> interrupt_status_{0};
    // Bumped by signal_config_change (VMM thread), read by the ConfigGeneration register (vCPU).
    std::atomic<uint32_t> config_generation_{0};
};

}  // namespace kite
