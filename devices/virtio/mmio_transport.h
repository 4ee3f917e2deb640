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
//
// Register page: the transport keeps every register's current value, and the config space, in one 4 KiB
// page laid out like the window (register_page()); read() answers from it. The VMM can map that page
// read-only over the window (a KVM_MEM_READONLY memslot, as QEMU does for a flash chip in ROM mode): the
// guest's reads then never leave the guest, and its writes still exit (or hit the ioeventfds above),
// after which the transport updates the page before the vCPU resumes. With the InterruptACK sink above,
// an interrupt of a vhost-user device costs the guest no exit to Kite; its ACK write is still an exit
// to KVM. (KVM in Linux 6.1, Debian 12's kernel, lets a write into a read-only memslot fault twice
// before emulating it, retrying in case a shadow page was in the way; later kernels retry only then. So
// on 6.1 each QueueNotify and InterruptACK write costs one more trip into KVM than over plain MMIO, the
// price of the saved exit to user space.)
// - Reads in virtio-mmio have no side effects, so answering them from memory is exact.
// - InterruptStatus and ConfigGeneration are words in the page itself, changed by atomic operations, so
//   the page is never behind the state: a bit is in the page before the interrupt is raised.
// - The config space is copied in whenever it may change (a config change, a driver's config write,
//   a restore), between two ConfigGeneration bumps, so the driver's generation check sees every copy.
// - Selector-dependent registers (DeviceFeatures, the queue registers, the shm registers) are rewritten
//   after every register write; only register writes change them.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "base/error.h"
#include "base/event_fd.h"
#include "base/fd.h"
#include "devices/bus_device.h"
#include "devices/virtio/transport_core.h"
#include "devices/virtio/virtio_device.h"
#include "memory/guest_memory.h"

namespace kite {

class VirtioMmioTransport final : public BusDevice, public VirtioInterrupt {
public:
    // Register offsets (VIRTIO 1.2, 4.2.2 "MMIO Device Register Layout"); the VMM binds kQueueNotifyOffset
    // and kInterruptAckOffset to KVM ioeventfds.
    enum Register : uint64_t {
        kMagicValue = 0x000,
        kVersion = 0x004,
        kDeviceId = 0x008,
        kVendorIdReg = 0x00c,
        kDeviceFeatures = 0x010,
        kDeviceFeaturesSel = 0x014,
        kDriverFeatures = 0x020,
        kDriverFeaturesSel = 0x024,
        kQueueSel = 0x030,
        kQueueNumMax = 0x034,
        kQueueNum = 0x038,
        kQueueReady = 0x044,
        kQueueNotifyOffset = 0x050,
        kInterruptStatusOffset = 0x060,
        kInterruptAckOffset = 0x064,
        kStatus = 0x070,
        kQueueDescLow = 0x080,
        kQueueDescHigh = 0x084,
        kQueueDriverLow = 0x090,
        kQueueDriverHigh = 0x094,
        kQueueDeviceLow = 0x0a0,
        kQueueDeviceHigh = 0x0a4,
        kShmSel = 0x0ac,
        kShmLenLow = 0x0b0,
        kShmLenHigh = 0x0b4,
        kShmBaseLow = 0x0b8,
        kShmBaseHigh = 0x0bc,
        kConfigGenerationOffset = 0x0fc,
    };
    // InterruptStatus bit 0; the sink below absorbs an InterruptACK of exactly this value.
    static constexpr uint32_t kInterruptUsedBuffer = 1;
    static constexpr uint64_t kConfigOffset = 0x100;
    // Size of the MMIO window to register on the bus and describe in ACPI / virtio_mmio.device=.
    static constexpr uint64_t kWindowSize = 0x1000;
    static constexpr uint32_t kMagic = 0x74726976;     // "virt"
    static constexpr uint32_t kVendorId = 0x4554494b;  // "KITE" as little-endian bytes

    // Creates the kick and interrupt eventfds. The device's shared memory regions (if any) are reported
    // exactly as device->shm_regions() returns them: the VMM places them and tells the device.
    // `page`: the register page (kWindowSize bytes, 4-byte aligned, kept alive by the pointer) that the
    // VMM maps read-only over the window; without one the transport keeps its own, for read() alone.
    static Result<std::shared_ptr<VirtioMmioTransport>> create(std::shared_ptr<VirtioDevice> device,
                                                               GuestMemory& memory, asio::io_context& io,
                                                               std::shared_ptr<std::byte> page = {});
    // Resets an active device: call on the VMM thread (or after the io_context stopped).
    ~VirtioMmioTransport() override;

    int kick_fd(unsigned queue) const { return core_->kick_fd(queue); }
    unsigned num_queues() const { return core_->num_queues(); }
    int irq_fd() const { return irq_fd_.get(); }
    // -1 unless the device's InterruptStatus always reports a used buffer (see the top of this file).
    int used_ack_sink_fd() const { return used_ack_sink_.get(); }
    VirtioDevice& device() { return core_->device(); }

    std::span<const std::byte> register_page() const { return {page_.get(), kWindowSize}; }
    // Register and config reads that reached the transport: with the page mapped, only the VMM's own.
    uint64_t reads_handled() const { return reads_handled_.load(std::memory_order_relaxed); }
    // One line for SIGUSR1: the device, its status and its queues' rings (TransportCore::describe).
    std::string describe() const;

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
    VirtioMmioTransport() = default;

    std::atomic_ref<uint32_t> word(uint64_t offset) const;
    void put(uint64_t offset, uint32_t value) const;
    void render_registers_locked();  // every register but InterruptStatus and ConfigGeneration
    void render_config(bool changed);  // changed: the driver must see a new ConfigGeneration regardless
    void write_register(uint64_t offset, uint32_t value);
    void write_queue_register(uint64_t offset, uint32_t value);
    void trigger();

    EventFd irq_fd_;
    EventFd used_ack_sink_;
    // kInterruptUsedBuffer for a device whose status always reports one (see the top), else 0.
    uint32_t always_set_interrupt_bits_ = 0;
    std::shared_ptr<std::byte> page_;  // the register page; its words change only through word()/put()
    std::atomic<uint64_t> reads_handled_{0};
    std::mutex config_mutex_;  // one config copy into the page at a time (vCPU and VMM threads)

    mutable std::mutex mutex_;  // guards the core and shm_sel_
    uint32_t shm_sel_ = 0;
    // Declared last, destroyed first: it resets an active device while the eventfds above still exist.
    std::unique_ptr<virtio::TransportCore> core_;
};

}  // namespace kite
