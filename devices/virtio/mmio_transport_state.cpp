// Snapshot state of a virtio-mmio transport: save_state() / restore_state().
//
// Layout (little-endian), version 1:
//   u8 version, u32 device_id, u16 num_queues, u32 status, u32 device_features_sel,
//   u32 driver_features_sel, u64 driver_features, u32 queue_sel, u32 shm_sel, u32 interrupt_status,
//   u32 config_generation, then per queue: u16 max_size, u16 size, u8 ready, u64 desc, u64 avail, u64 used.
// The blob names the device and its queues so that a restore into a differently configured VM (other
// device flags or order) is refused instead of misread.
//
// Ring positions are not in the blob: save_state() quiesces the device first, so every chain it popped
// is in the used ring, and a restored device continues each queue at used.idx in guest memory.
#include <cstring>
#include <string>

#include "base/asio_loop.h"
#include "devices/virtio/mmio_transport.h"
#include "devices/virtio/queue.h"
#include "devices/virtio/spec.h"

namespace kite {

namespace {

constexpr uint8_t kStateVersion = 1;
constexpr size_t kHeaderBytes = 43;
constexpr size_t kQueueBytes = 29;
constexpr uint32_t kKnownStatusBits = virtio::kStatusAcknowledge | virtio::kStatusDriver | virtio::kStatusDriverOk |
                                      virtio::kStatusFeaturesOk | virtio::kStatusDeviceNeedsReset |
                                      virtio::kStatusFailed;
constexpr uint32_t kKnownInterruptBits = 3;  // used buffer, config change

class Writer {
public:
    template <class T>
    void put(T value) {
        for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<uint8_t>(uint64_t(value) >> (8 * i)));
    }
    std::vector<uint8_t> out;
};

// Reads fixed-size fields; the caller checked the total length first, so get() never runs past the end.
class Reader {
public:
    explicit Reader(std::span<const uint8_t> bytes) : bytes_(bytes) {}
    template <class T>
    T get() {
        uint64_t v = 0;
        for (size_t i = 0; i < sizeof(T) && at_ < bytes_.size(); ++i) v |= uint64_t(bytes_[at_++]) << (8 * i);
        return static_cast<T>(v);
    }

private:
    std::span<const uint8_t> bytes_;
    size_t at_ = 0;
};

struct SavedQueue {
    uint16_t max_size;
    QueueConfig config;
};

}  // namespace

std::vector<uint8_t> VirtioMmioTransport::save_state() {
    // Completions write used rings and may raise the interrupt: before the registers are read.
    device_->quiesce();
    Writer w;
    std::lock_guard lock(mutex_);
    w.put<uint8_t>(kStateVersion);
    w.put<uint32_t>(device_->device_id());
    w.put<uint16_t>(static_cast<uint16_t>(queues_.size()));
    w.put<uint32_t>(status_);
    w.put<uint32_t>(device_features_sel_);
    w.put<uint32_t>(driver_features_sel_);
    w.put<uint64_t>(driver_features_);
    w.put<uint32_t>(queue_sel_);
    w.put<uint32_t>(shm_sel_);
    w.put<uint32_t>(word(kInterruptStatusOffset).load(std::memory_order_acquire));  // pairs with signal_*
    w.put<uint32_t>(word(kConfigGenerationOffset).load(std::memory_order_acquire));
    for (const QueueState& q : queues_) {
        w.put<uint16_t>(q.max_size);
        w.put<uint16_t>(q.config.size);
        w.put<uint8_t>(q.config.ready ? 1 : 0);
        w.put<uint64_t>(q.config.desc.value());
        w.put<uint64_t>(q.config.avail.value());
        w.put<uint64_t>(q.config.used.value());
    }
    return std::move(w.out);
}

Result<void> VirtioMmioTransport::restore_state(std::span<const uint8_t> bytes) {
    const std::string what = "virtio-mmio state (device id " + std::to_string(device_->device_id()) + ")";
    if (bytes.size() < kHeaderBytes)
        return fail(what + ": " + std::to_string(bytes.size()) + " bytes, shorter than its header");
    Reader r(bytes);
    const auto version = r.get<uint8_t>();
    if (version != kStateVersion) return fail(what + ": unsupported version " + std::to_string(version));
    const auto device_id = r.get<uint32_t>();
    if (device_id != device_->device_id())
        return fail(what + ": saved for device id " + std::to_string(device_id) +
                    " (give the same devices in the same order as the snapshotted VM)");
    const auto num_queues = r.get<uint16_t>();
    if (num_queues != queues_.size())
        return fail(what + ": " + std::to_string(num_queues) + " queues saved, the device has " +
                    std::to_string(queues_.size()));
    if (bytes.size() != kHeaderBytes + kQueueBytes * num_queues)
        return fail(what + ": " + std::to_string(bytes.size()) + " bytes, want " +
                    std::to_string(kHeaderBytes + kQueueBytes * num_queues));
    const auto status = r.get<uint32_t>();
    const auto device_features_sel = r.get<uint32_t>();
    const auto driver_features_sel = r.get<uint32_t>();
    const auto driver_features = r.get<uint64_t>();
    const auto queue_sel = r.get<uint32_t>();
    const auto shm_sel = r.get<uint32_t>();
    const auto interrupt_status = r.get<uint32_t>();
    const auto config_generation = r.get<uint32_t>();
    std::vector<SavedQueue> saved(num_queues);
    for (SavedQueue& q : saved) {
        q.max_size = r.get<uint16_t>();
        q.config.size = r.get<uint16_t>();
        const auto ready = r.get<uint8_t>();
        q.config.desc = GuestAddress(r.get<uint64_t>());
        q.config.avail = GuestAddress(r.get<uint64_t>());
        q.config.used = GuestAddress(r.get<uint64_t>());
        if (ready > 1) return fail(what + ": queue ready flag " + std::to_string(ready) + " is not 0 or 1");
        q.config.ready = ready == 1;
    }

    // The same checks the register writes make, so a restored transport is one a driver could reach.
    if (status & ~kKnownStatusBits) return fail(what + ": status " + std::to_string(status) + " has unknown bits");
    if ((status & virtio::kStatusDriverOk) && !(status & virtio::kStatusFeaturesOk))
        return fail(what + ": status has DRIVER_OK without FEATURES_OK");
    const uint64_t offered = device_->device_features();
    if ((status & virtio::kStatusFeaturesOk) &&
        ((driver_features & ~offered) || !(driver_features & virtio::kFeatureVersion1)))
        return fail(what + ": driver features " + std::to_string(driver_features) +
                    " are not a VERSION_1 subset of what this device offers (" + std::to_string(offered) +
                    "); give the same device options as the snapshotted VM");
    if (interrupt_status & ~kKnownInterruptBits)
        return fail(what + ": interrupt status " + std::to_string(interrupt_status) + " has unknown bits");
    for (size_t i = 0; i < saved.size(); ++i) {
        if (saved[i].max_size != queues_[i].max_size)
            return fail(what + ": queue " + std::to_string(i) + " saved with maximum size " +
                        std::to_string(saved[i].max_size) + ", the device has " + std::to_string(queues_[i].max_size));
        if (!saved[i].config.ready) continue;
        if (auto ok = Queue::validate(memory_, saved[i].config, queues_[i].max_size); !ok)
            return fail(what + ": queue " + std::to_string(i) + ": " + ok.error().message);
    }

    std::lock_guard lock(mutex_);
    if (status_ != 0 || device_active_) return fail(what + ": the driver already uses this transport");
    status_ = status;
    device_features_sel_ = device_features_sel;
    driver_features_sel_ = driver_features_sel;
    driver_features_ = driver_features;
    queue_sel_ = queue_sel;
    shm_sel_ = shm_sel;
    for (size_t i = 0; i < saved.size(); ++i) queues_[i].config = saved[i].config;
    put(kInterruptStatusOffset, interrupt_status | always_set_interrupt_bits_);
    put(kConfigGenerationOffset, config_generation);
    render_registers_locked();
    // A device that had failed (DEVICE_NEEDS_RESET) stays inactive until the driver resets it.
    if ((status & virtio::kStatusDriverOk) && !(status & virtio::kStatusDeviceNeedsReset))
        post_activate_locked(/*restored=*/true);
    // An interrupt raised just before the snapshot may not have reached the saved local APIC state (irqfd
    // injection is asynchronous): raise it again. The driver reads InterruptStatus, so a spare one is harmless.
    if (interrupt_status != 0) trigger();
    return {};
}

}  // namespace kite
