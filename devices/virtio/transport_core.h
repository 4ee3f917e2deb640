// The state machine every virtio transport shares, apart from its register layout (in the spirit of
// rust-vmm's VirtioConfig and the virtio-queue crate's queue state): device status, the driver's
// features and both feature select registers, queue selection and the rules for writing a queue's
// registers, the device's kick eventfds, activation and reset posted to the VMM thread, and the common
// part of the snapshot state. VirtioMmioTransport and VirtioPciTransport are register layouts over it.
//
// Threads: the core's registers have no lock of their own. Its owner calls it under the owner's register
// lock (vCPU threads, and the VMM thread for needs_reset and snapshots); the device's activate() and
// reset() are posted to the VMM thread and run without that lock, through a weak reference to the owner.
// They are coalesced: at most one handler is pending per transport, and it runs what the driver asked for
// last (a reset if the device had been activated, then the latest activation), so a guest that loops
// resets and DRIVER_OK costs the VMM thread one device reset and activation per handler, never a queue.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/event_fd.h"
#include "base/fd.h"
#include "base/log_limit.h"
#include "devices/virtio/spec.h"
#include "devices/virtio/transport_state.h"
#include "devices/virtio/virtio_device.h"
#include "memory/guest_memory.h"

namespace kite::virtio {

class TransportCore {
public:
    struct QueueState {
        uint16_t max_size = 0;
        QueueConfig config;
        EventFd kick;  // readable after a guest notify
    };
    // What a reset leaves in a queue's size register: 0 (virtio-mmio), or the device's maximum
    // (virtio-pci, where queue_size reads the maximum until the driver writes a smaller one).
    enum class SizeAtReset { kZero, kMaximum };

    // `name` ("virtio-mmio") starts every warning. Creates one kick eventfd per device queue.
    static Result<std::unique_ptr<TransportCore>> create(std::shared_ptr<VirtioDevice> device, GuestMemory& memory,
                                                         asio::io_context& io, std::string_view name,
                                                         SizeAtReset size_at_reset);
    // Resets an active device: the device may hold its owner as its VirtioInterrupt until it is reset.
    ~TransportCore();
    TransportCore(const TransportCore&) = delete;
    TransportCore& operator=(const TransportCore&) = delete;

    // Set once by the owner after it exists: who activations and resets are posted for (they are
    // dropped once the owner is gone) and the interrupt eventfds the device gets: `irq` for every queue
    // (virtio-mmio), or `calls`, one per queue (virtio-pci).
    void attach(std::weak_ptr<VirtioInterrupt> owner, BorrowedFd irq, std::vector<BorrowedFd> calls);

    VirtioDevice& device() const { return *device_; }
    LogLimit& log() { return log_; }
    std::string_view name() const { return name_; }
    unsigned num_queues() const { return static_cast<unsigned>(queues_.size()); }
    const QueueState& queue(unsigned index) const { return queues_[index]; }
    int kick_fd(unsigned queue) const { return queue < queues_.size() ? queues_[queue].kick.get() : -1; }
    // Forwards a notification the hypervisor did not take. guest-controlled: unknown queues are ignored.
    void notify(uint64_t queue) const;
    // For whoever debugs a stuck device (SIGUSR1): the status and, for each ready queue, the ring indices
    // and flags in guest memory (with EVENT_IDX the event fields too) and whether a kick waits unread.
    // A kick that waits means the device side is not reading; used.idx behind avail.idx with no kick
    // waiting means it is working or lost one; used.idx caught up while the guest still waits points at
    // a lost interrupt.
    std::string describe() const;

    uint32_t status() const { return regs_.status; }
    bool driver_ok() const { return (regs_.status & kStatusDriverOk) != 0; }

    // Feature registers. guest-controlled: select values and the written half.
    uint32_t device_features_sel() const { return regs_.device_features_sel; }
    uint32_t driver_features_sel() const { return regs_.driver_features_sel; }
    void select_device_features(uint32_t sel) { regs_.device_features_sel = sel; }
    void select_driver_features(uint32_t sel) { regs_.driver_features_sel = sel; }
    uint32_t device_features_word() const;  // the half DeviceFeaturesSel selects, 0 past bit 63
    uint32_t driver_features_word() const;
    void write_driver_features(uint32_t value);  // ignored after FEATURES_OK

    // Queue selection and the queue registers. guest-controlled: sel.
    uint32_t queue_sel() const { return regs_.queue_sel; }
    void select_queue(uint32_t sel) { regs_.queue_sel = sel; }
    // The selected queue; nullptr for an absent one.
    const QueueState* selected() const { return regs_.queue_sel < queues_.size() ? &queues_[regs_.queue_sel] : nullptr; }
    // The selected queue if the driver may configure it now: nullptr (with a warning naming `reg`) for
    // an absent queue or after DRIVER_OK.
    QueueConfig* configurable_queue(uint64_t reg);
    // False (with a warning) while the queue is ready: its size and ring addresses are fixed then.
    bool stopped(const QueueConfig& queue, uint64_t reg);
    // The driver enables the selected queue: validated against the device's maximum and guest RAM; a
    // queue refused stays not ready and sets DEVICE_NEEDS_RESET (so DRIVER_OK will not stick).
    void enable_selected_queue();

    // guest-controlled: a status write. Returns true when it was 0, a reset: the owner then clears its
    // own registers (the core cleared its own and posted the device's reset).
    bool write_status(uint32_t value);
    // The device asked for a reset: sets DEVICE_NEEDS_RESET unless the driver reset the device
    // meanwhile. Returns whether it did (the owner then raises a config interrupt).
    bool flag_needs_reset();

    // Snapshot. save(): the common state (call after the device quiesced). check(): everything the
    // register writes would have refused, and a device or queues other than this one's, without
    // changing anything. in_use(): the driver already set this transport up (a restore is refused).
    // restore(): takes a checked state and activates a device the driver had set DRIVER_OK on (unless it
    // also had DEVICE_NEEDS_RESET), its queues continuing at their used rings' idx.
    CommonState save() const;
    Result<void> check(const CommonState& state, const std::string& what) const;
    bool in_use() const { return regs_.status != 0 || device_active_; }
    void restore(const CommonState& state);

private:
    TransportCore(std::shared_ptr<VirtioDevice> device, GuestMemory& memory, asio::io_context& io,
                  std::string_view name, SizeAtReset size_at_reset);
    void reset();
    void post_activate(bool restored);

    // What the driver asked the device for, waiting for the VMM thread.
    struct Activation {
        std::vector<QueueConfig> configs;
        std::vector<BorrowedFd> kicks, calls;
        uint64_t features = 0;
        bool restored = false;
    };
    struct Pending {
        bool posted = false;                // a handler is on its way
        bool reset = false;                 // reset the device first (if it was activated)
        std::optional<Activation> activate; // then this, the latest activation
    };
    void schedule_locked();
    void run_pending(VirtioInterrupt& owner);

    std::shared_ptr<VirtioDevice> device_;
    GuestMemory& memory_;
    asio::io_context& io_;
    const std::string name_;
    const SizeAtReset size_at_reset_;
    LogLimit log_;
    std::weak_ptr<VirtioInterrupt> owner_;
    BorrowedFd irq_fd_;
    std::vector<BorrowedFd> call_fds_;

    DriverRegisters regs_;
    std::vector<QueueState> queues_;
    bool device_active_ = false;  // activate() was posted since the last reset
    std::mutex pending_mutex_;    // a leaf lock: vCPU threads (under the owner's lock) and the VMM thread
    Pending pending_;
    bool device_running_ = false;  // VMM thread: the device's activate() ran since its last reset()
};

}  // namespace kite::virtio
