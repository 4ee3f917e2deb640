// The virtio-pci transport, modern interface only (VIRTIO 1.2 section 4.1), with MSI-X interrupts.
//
// What the guest sees: a PCI function with vendor 0x1af4, device 0x1040 + device id, revision 1, and
// one 32-bit memory BAR (BAR 0, kBar0Size bytes) holding, at fixed offsets, the common configuration,
// the ISR status byte, the device configuration, the notification area (queue q at q *
// kNotifyMultiplier) and the MSI-X table and pending bit array. The vendor capabilities in config space
// point at these, as does the MSI-X capability. There is no INTx (interrupt pin 0): a driver must
// enable MSI-X, which Linux's virtio_pci does.
//
// Interrupts: one vector per queue plus one for config changes (msix_vectors()). Vector v is KVM GSI
// first_gsi + v, routed as an MSI with the address and data the guest put in table entry v. Each queue
// has its own interrupt eventfd (call_fd(q), handed to the device at activation: a vhost-user back-end
// writes it directly) and config changes have one more; each eventfd is bound with KVM_IRQFD to the GSI of
// the vector the driver selected for it (queue_msix_vector / config_msix_vector) while that vector is
// deliverable (MSI-X enabled, function and entry unmasked). While it is not, the eventfd is unbound and
// keeps counting: binding it again makes KVM inject what was pending, so masking loses nothing, and the
// PBA shows those events as pending.
//
// Notifications: one eventfd per queue (kick_fd(q)), bound as a KVM ioeventfd to BAR 0 + kNotifyOffset
// + q * kNotifyMultiplier, any width (each queue has its own address, as QEMU binds them), while the BAR
// decodes; the guest may move the BAR, and the ioeventfds follow it. A notification that still reaches
// the transport is forwarded.
//
// Threads: PciDevice calls on vCPU threads; activate()/reset() of the device are posted to the VMM thread;
// signal_* are called on the VMM thread. One mutex guards the transport state; it is never held while
// calling the device, except read_config/write_config (which the devices make cheap and non-blocking).
//
// Not supported (refused at create()): devices with VIRTIO shared memory regions.
//
// Snapshots: save_state()/restore_state() carry the common virtio state and the function's own: config
// space (command register, BAR 0 placement, MSI-X enable and mask), the MSI-X table, the vector of each
// queue and of config changes, the interrupts pending on masked vectors (the PBA), ISR and
// ConfigGeneration (layout in pci_transport_state.cpp).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/event_fd.h"
#include "base/fd.h"
#include "devices/pci/config_space.h"
#include "devices/pci/msix.h"
#include "devices/pci/pci_device.h"
#include "devices/virtio/transport_core.h"
#include "devices/virtio/virtio_device.h"
#include "memory/guest_memory.h"

namespace kite {

// What the transport asks of the hypervisor (the VMM implements it over KVM; tests record the calls).
// Called on vCPU threads under the transport's lock, and at create().
class PciInterruptHost {
public:
    virtual ~PciInterruptHost() = default;
    // Route `gsi` as an MSI with this address and data (replacing its previous route).
    virtual Result<void> set_msi_route(uint32_t gsi, uint64_t address, uint32_t data) = 0;
    virtual Result<void> bind_irqfd(int fd, uint32_t gsi) = 0;
    virtual Result<void> unbind_irqfd(int fd, uint32_t gsi) = 0;
    // MMIO ioeventfds. length 0 matches a write of any width (KVM then also puts it on its fast MMIO
    // path, which on Intel skips decoding the instruction); no datamatch then.
    virtual Result<void> bind_ioeventfd(int fd, uint64_t address, uint32_t length,
                                        std::optional<uint64_t> datamatch) = 0;
    virtual Result<void> unbind_ioeventfd(int fd, uint64_t address, uint32_t length,
                                          std::optional<uint64_t> datamatch) = 0;
};

class VirtioPciTransport final : public pci::PciDevice, public VirtioInterrupt {
public:
    static constexpr uint16_t kVendorId = 0x1af4;
    static constexpr uint16_t kDeviceIdBase = 0x1040;
    static constexpr uint64_t kCommonOffset = 0x0000;
    static constexpr uint64_t kCommonSize = 0x40;
    static constexpr uint64_t kIsrOffset = 0x1000;
    static constexpr uint64_t kDeviceConfigOffset = 0x2000;
    static constexpr uint64_t kDeviceConfigSize = 0x1000;
    static constexpr uint64_t kNotifyOffset = 0x3000;
    static constexpr uint32_t kNotifyMultiplier = 4;
    static constexpr uint64_t kMsixTableOffset = 0x4000;
    static constexpr uint64_t kMsixPbaOffset = 0x6000;
    static constexpr uint64_t kBar0Size = 0x8000;
    static constexpr uint16_t kNoVector = 0xffff;  // VIRTIO_MSI_NO_VECTOR
    static constexpr unsigned kMaxQueues = 511;     // one vector each, plus config: the MSI-X table fits

    // `bar0`: where BAR 0 starts (from PciRoot::allocate_bar(kBar0Size)); `first_gsi`: the first of
    // msix_vectors() consecutive GSIs reserved for this function.
    static Result<std::shared_ptr<VirtioPciTransport>> create(std::shared_ptr<VirtioDevice> device, GuestMemory& memory,
                                                              asio::io_context& io, PciInterruptHost& host,
                                                              uint64_t bar0, uint32_t first_gsi);
    // The core, destroyed first, resets an active device.
    ~VirtioPciTransport() override = default;

    unsigned num_queues() const { return core_->num_queues(); }
    uint16_t msix_vectors() const { return static_cast<uint16_t>(num_queues() + 1); }
    int kick_fd(unsigned queue) const { return core_->kick_fd(queue); }
    int call_fd(unsigned queue) const { return queue < queue_irqs_.size() ? queue_irqs_[queue].fd.get() : -1; }
    int config_fd() const { return config_irq_.fd.get(); }
    VirtioDevice& device() { return core_->device(); }
    // One line for the SIGUSR1 report: status, MSI-X state and where each interrupt eventfd goes.
    std::string describe() const;

    // VirtioInterrupt (VMM thread).
    void signal_used_queue(uint16_t queue) override;
    void signal_config_change() override;
    void needs_reset() override;

    // pci::PciDevice (vCPU threads). guest-controlled: offsets, sizes and values.
    uint32_t config_read(uint16_t offset, unsigned size) override;
    void config_write(uint16_t offset, unsigned size, uint32_t value) override;
    void bar_read(unsigned bar, uint64_t offset, std::span<uint8_t> data) override;
    void bar_write(unsigned bar, uint64_t offset, std::span<const uint8_t> data) override;
    std::optional<uint64_t> bar_address(unsigned bar) const override;
    uint64_t bar_size(unsigned bar) const override { return bar == 0 ? kBar0Size : 0; }

    // Snapshot (VMM thread, vCPUs paused): quiesces the device (requests in flight complete), then
    // returns the function's state in a versioned byte format.
    std::vector<uint8_t> save_state();
    // Restore into a function the driver has not touched (VMM thread, before the vCPUs run, guest memory
    // already restored). The bytes come from a file: everything is checked against this function and
    // guest memory first, and a bad blob is refused with the state left as it was. The function then
    // decodes where it did and routes each vector as it did; a device the driver had set DRIVER_OK on
    // is activated again, its queues continuing at their used rings' idx.
    Result<void> restore_state(std::span<const uint8_t> bytes);


private:
    // An interrupt eventfd and where it goes: the vector the driver chose, the GSI it is bound to now.
    struct IrqSource {
        EventFd fd;
        uint16_t vector = kNoVector;
        std::optional<uint32_t> bound_gsi;
    };

    VirtioPciTransport(uint16_t device_id, PciInterruptHost& host, uint32_t first_gsi);
    Result<void> init(uint64_t bar0, std::weak_ptr<VirtioPciTransport> self);

    void common_read(uint64_t offset, std::span<uint8_t> data);
    void common_write(uint64_t offset, std::span<const uint8_t> data);
    void write_queue_field(uint64_t offset, unsigned size, uint64_t value);
    void reset_locked();
    uint16_t checked_vector(uint16_t vector) const;
    void set_vector(IrqSource& source, uint16_t vector);
    void rebind(IrqSource& source);
    void msix_changed(uint16_t vector, const pci::MsixVector& state);
    bool vector_pending(uint16_t vector) const;
    // An interrupt waits in the source's eventfd, unbound: its vector's PBA bit.
    static bool waiting(const IrqSource& source);
    void update_notify_bindings();
    void raise(IrqSource& source, uint8_t isr_bit);

    PciInterruptHost& host_;
    const uint32_t first_gsi_;

    mutable std::mutex mutex_;  // everything below
    pci::ConfigSpace config_;
    uint16_t msix_control_offset_ = 0;  // Message Control's offset in config space
    std::optional<pci::Msix> msix_;
    std::vector<IrqSource> queue_irqs_;  // each queue's interrupt eventfd (call_fd)
    IrqSource config_irq_;
    std::optional<uint64_t> notify_bound_at_;  // BAR 0 address the ioeventfds are bound at
    std::atomic<uint64_t> bar0_decode_{~0ull};   // bar_address(0) for lock-free lookups; ~0 = none
    std::atomic<uint8_t> isr_{0};
    std::atomic<uint8_t> config_generation_{0};
    // Declared last, destroyed first: it resets an active device while the eventfds above still exist.
    std::unique_ptr<virtio::TransportCore> core_;
};

}  // namespace kite
