#include "devices/virtio/mmio_transport.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "base/asio_loop.h"
#include "base/event_fd.h"
#include "devices/virtio/device_status.h"
#include "devices/virtio/queue.h"
#include "devices/virtio/spec.h"

namespace kite {

namespace {

// Register offsets (VIRTIO 1.2, 4.2.2 "MMIO Device Register Layout").
enum Reg : uint64_t {
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
    kQueueNotify = 0x050,
    kInterruptStatus = 0x060,
    kInterruptAck = 0x064,
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
    kConfigGeneration = 0x0fc,
};

static_assert(kInterruptAck == VirtioMmioTransport::kInterruptAckOffset);
static_assert(kInterruptStatus == VirtioMmioTransport::kInterruptStatusOffset);
static_assert(kConfigGeneration == VirtioMmioTransport::kConfigGenerationOffset);
constexpr uint32_t kInterruptConfigChange = 2;

GuestAddress with_low(GuestAddress a, uint32_t low) { return GuestAddress((a.value() & ~0xffffffffull) | low); }
GuestAddress with_high(GuestAddress a, uint32_t high) {
    return GuestAddress((a.value() & 0xffffffffull) | (uint64_t{high} << 32));
}

}  // namespace

Result<std::shared_ptr<VirtioMmioTransport>> VirtioMmioTransport::create(std::shared_ptr<VirtioDevice> device,
                                                                         GuestMemory& memory, asio::io_context& io,
                                                                         std::shared_ptr<std::byte> page) {
    if (!device) return fail("virtio-mmio: no device");
    std::shared_ptr<VirtioMmioTransport> t(new VirtioMmioTransport(std::move(device), memory, io));
    for (size_t i = 0; i < t->queues_.size(); ++i) {
        auto fd = EventFd::create();
        if (!fd) return std::unexpected(fd.error());
        t->kick_fds_.push_back(std::move(*fd));
    }
    auto irq = EventFd::create();
    if (!irq) return std::unexpected(irq.error());
    t->irq_fd_ = std::move(*irq);
    if (t->device_->interrupt_status_always_used()) {
        auto sink = EventFd::create();
        if (!sink) return std::unexpected(sink.error());
        t->used_ack_sink_ = std::move(*sink);
        t->always_set_interrupt_bits_ = kInterruptUsedBuffer;
    }
    if (!page) {  // no page to map over the window: one on the heap, for read()
        auto heap = std::make_shared<std::array<uint32_t, kWindowSize / 4>>();
        page = std::shared_ptr<std::byte>(heap, reinterpret_cast<std::byte*>(heap->data()));
    }
    t->page_ = std::move(page);
    std::memset(t->page_.get(), 0, kWindowSize);
    t->put(kInterruptStatus, t->always_set_interrupt_bits_);
    {
        std::lock_guard lock(t->mutex_);
        t->render_registers_locked();
    }
    // The first copy of the config space: ConfigGeneration stays 0, the driver has read nothing yet.
    t->device_->read_config(0, std::span(reinterpret_cast<uint8_t*>(t->page_.get()) + kConfigOffset,
                                         kWindowSize - kConfigOffset));
    return t;
}

VirtioMmioTransport::VirtioMmioTransport(std::shared_ptr<VirtioDevice> device, GuestMemory& memory,
                                         asio::io_context& io)
    : device_(std::move(device)), memory_(memory), io_(io) {
    for (uint16_t max : device_->queue_max_sizes()) queues_.push_back(QueueState{max, {}});
}

VirtioMmioTransport::~VirtioMmioTransport() {
    // The device may hold a reference to this transport as its VirtioInterrupt until it is reset.
    if (device_active_) device_->reset();
    spdlog::debug("virtio-mmio: device id {}: {} register or config reads exited to Kite", device_->device_id(),
                  reads_handled());
}

std::atomic_ref<uint32_t> VirtioMmioTransport::word(uint64_t offset) const {
    return std::atomic_ref<uint32_t>(*reinterpret_cast<uint32_t*>(page_.get() + offset));
}

// Release: a guest that reads the new value sees everything the transport did before it.
void VirtioMmioTransport::put(uint64_t offset, uint32_t value) const {
    word(offset).store(value, std::memory_order_release);
}

void VirtioMmioTransport::render_registers_locked() {
    put(kMagicValue, kMagic);
    put(kVersion, 2);
    put(kDeviceId, device_->device_id());
    put(kVendorIdReg, kVendorId);
    put(kDeviceFeatures,
        device_features_sel_ < 2 ? uint32_t(device_->device_features() >> (32 * device_features_sel_)) : 0);
    const QueueConfig none{};
    const QueueConfig& q = queue_sel_ < queues_.size() ? queues_[queue_sel_].config : none;
    put(kQueueNumMax, queue_sel_ < queues_.size() ? queues_[queue_sel_].max_size : 0);
    put(kQueueNum, q.size);
    put(kQueueReady, q.ready ? 1 : 0);
    put(kStatus, status_);
    put(kQueueDescLow, uint32_t(q.desc.value()));
    put(kQueueDescHigh, uint32_t(q.desc.value() >> 32));
    put(kQueueDriverLow, uint32_t(q.avail.value()));
    put(kQueueDriverHigh, uint32_t(q.avail.value() >> 32));
    put(kQueueDeviceLow, uint32_t(q.used.value()));
    put(kQueueDeviceHigh, uint32_t(q.used.value() >> 32));
    // An absent shared memory region reads all-ones in length and base.
    uint64_t shm_len = ~0ull, shm_base = ~0ull;
    for (const ShmRegion& r : device_->shm_regions()) {
        if (r.id != shm_sel_) continue;
        shm_len = r.size;
        shm_base = r.base.value();
    }
    put(kShmLenLow, uint32_t(shm_len));
    put(kShmLenHigh, uint32_t(shm_len >> 32));
    put(kShmBaseLow, uint32_t(shm_base));
    put(kShmBaseHigh, uint32_t(shm_base >> 32));
}

void VirtioMmioTransport::render_config(bool changed) {
    // Read under the lock too: a copy of older bytes must not land after a copy of newer ones.
    std::lock_guard lock(config_mutex_);
    std::array<uint8_t, kWindowSize - kConfigOffset> config{};
    device_->read_config(0, config);
    std::byte* in_page = page_.get() + kConfigOffset;
    if (std::memcmp(in_page, config.data(), config.size()) != 0) {
        // Like a seqlock: a driver whose reads overlap the copy sees the generation change around them.
        word(kConfigGeneration).fetch_add(1, std::memory_order_acq_rel);
        std::memcpy(in_page, config.data(), config.size());
        changed = true;
    }
    if (changed) word(kConfigGeneration).fetch_add(1, std::memory_order_acq_rel);
}

void VirtioMmioTransport::read(uint64_t offset, std::span<uint8_t> data) {
    reads_handled_.fetch_add(1, std::memory_order_relaxed);
    if (offset >= kConfigOffset) {
        // guest-controlled: offset and size; bytes past the window read as zero.
        std::fill(data.begin(), data.end(), 0);
        if (offset < kWindowSize)
            std::memcpy(data.data(), page_.get() + offset, std::min<uint64_t>(data.size(), kWindowSize - offset));
        return;
    }
    if (data.size() != 4 || offset % 4 != 0) {
        log_.warn("virtio-mmio: {}-byte read at register {:#x} ignored", data.size(), offset);
        std::memset(data.data(), 0, data.size());
        return;
    }
    // Acquire pairs with put() and the fetch_or in signal_*.
    uint32_t value = word(offset).load(std::memory_order_acquire);
    std::memcpy(data.data(), &value, 4);
}

void VirtioMmioTransport::write(uint64_t offset, std::span<const uint8_t> data) {
    if (offset >= kConfigOffset) {
        device_->write_config(offset - kConfigOffset, data);
        render_config(false);
        return;
    }
    if (data.size() != 4 || offset % 4 != 0) {
        log_.warn("virtio-mmio: {}-byte write at register {:#x} ignored", data.size(), offset);
        return;
    }
    uint32_t value;  // guest-controlled
    std::memcpy(&value, data.data(), 4);
    write_register(offset, value);
}

void VirtioMmioTransport::write_register(uint64_t offset, uint32_t value) {
    switch (offset) {
        case kQueueNotify:
            // guest-controlled: the queue index; unknown queues are ignored.
            if (value < kick_fds_.size()) kick_fds_[value].signal();
            return;
        case kInterruptAck:
            // Pairs with the fetch_or in signal_used_queue / signal_config_change.
            word(kInterruptStatus).fetch_and(~(value & ~always_set_interrupt_bits_), std::memory_order_acq_rel);
            return;
        default: break;
    }

    std::lock_guard lock(mutex_);
    switch (offset) {
        case kDeviceFeaturesSel: device_features_sel_ = value; break;
        case kDriverFeaturesSel: driver_features_sel_ = value; break;
        case kDriverFeatures:
            if (status_ & virtio::kStatusFeaturesOk) {
                log_.warn("virtio-mmio: DriverFeatures written after FEATURES_OK, ignored");
            } else if (driver_features_sel_ == 0) {
                driver_features_ = (driver_features_ & ~0xffffffffull) | value;
            } else if (driver_features_sel_ == 1) {
                driver_features_ = (driver_features_ & 0xffffffffull) | (uint64_t{value} << 32);
            }
            break;
        case kQueueSel: queue_sel_ = value; break;
        case kShmSel: shm_sel_ = value; break;
        case kStatus: write_status(value); break;
        case kQueueNum:
        case kQueueReady:
        case kQueueDescLow:
        case kQueueDescHigh:
        case kQueueDriverLow:
        case kQueueDriverHigh:
        case kQueueDeviceLow:
        case kQueueDeviceHigh: write_queue_register(offset, value); break;
        default: log_.warn("virtio-mmio: write to read-only or unknown register {:#x} ignored", offset); return;
    }
    render_registers_locked();
}

void VirtioMmioTransport::write_queue_register(uint64_t offset, uint32_t value) {
    if (queue_sel_ >= queues_.size()) {
        log_.warn("virtio-mmio: queue register {:#x} written for absent queue {}", offset, queue_sel_);
        return;
    }
    if (status_ & virtio::kStatusDriverOk) {
        log_.warn("virtio-mmio: queue register {:#x} written after DRIVER_OK, ignored", offset);
        return;
    }
    QueueState& q = queues_[queue_sel_];
    if (offset == kQueueReady) {
        if (value == 0) {
            q.config.ready = false;
            return;
        }
        if (auto ok = Queue::validate(memory_, q.config, q.max_size); !ok) {
            // The queue stays not ready; the device cannot work as configured.
            log_.warn("virtio-mmio: queue {} refused: {}", queue_sel_, ok.error().message);
            status_ |= virtio::kStatusDeviceNeedsReset;
            return;
        }
        q.config.ready = true;
        return;
    }
    if (q.config.ready) {
        log_.warn("virtio-mmio: queue {} register {:#x} written while ready, ignored", queue_sel_, offset);
        return;
    }
    switch (offset) {
        case kQueueNum: q.config.size = static_cast<uint16_t>(value > 0xffff ? 0 : value); break;
        case kQueueDescLow: q.config.desc = with_low(q.config.desc, value); break;
        case kQueueDescHigh: q.config.desc = with_high(q.config.desc, value); break;
        case kQueueDriverLow: q.config.avail = with_low(q.config.avail, value); break;
        case kQueueDriverHigh: q.config.avail = with_high(q.config.avail, value); break;
        case kQueueDeviceLow: q.config.used = with_low(q.config.used, value); break;
        case kQueueDeviceHigh: q.config.used = with_high(q.config.used, value); break;
        default: break;
    }
}

void VirtioMmioTransport::write_status(uint32_t value) {
    if (value == 0) {
        reset_locked();
        return;
    }
    // guest-controlled.
    auto update = virtio::apply_status_write(status_, value, driver_features_, device_->device_features(), log_,
                                             "virtio-mmio");
    status_ = update.status;
    if (update.activate) post_activate_locked();
}

void VirtioMmioTransport::post_activate_locked(bool restored) {
    std::vector<QueueConfig> configs;
    std::vector<int> kicks;
    for (size_t i = 0; i < queues_.size(); ++i) {
        configs.push_back(queues_[i].config);
        kicks.push_back(kick_fds_[i].get());
    }
    device_active_ = true;
    std::weak_ptr<VirtioMmioTransport> weak = weak_from_this();
    asio::post(io_, [weak, configs = std::move(configs), kicks = std::move(kicks), features = driver_features_,
                     restored] {
        auto self = weak.lock();
        if (!self) return;
        ActivateContext ctx{self->memory_, configs, kicks, self->irq_fd_.get(), *self, self->io_, features, restored};
        if (auto r = self->device_->activate(std::move(ctx)); !r) {
            self->log_.warn("virtio-mmio: device {} failed to activate: {}", self->device_->device_id(),
                            r.error().message);
            self->needs_reset();
        }
    });
}

void VirtioMmioTransport::reset_locked() {
    bool was_active = device_active_;
    status_ = 0;
    device_features_sel_ = driver_features_sel_ = 0;
    driver_features_ = 0;
    queue_sel_ = shm_sel_ = 0;
    for (auto& q : queues_) q.config = QueueConfig{};
    device_active_ = false;
    put(kInterruptStatus, always_set_interrupt_bits_);
    if (!was_active) return;
    std::weak_ptr<VirtioMmioTransport> weak = weak_from_this();
    asio::post(io_, [weak] {
        if (auto self = weak.lock()) self->device_->reset();
    });
}

void VirtioMmioTransport::trigger() { irq_fd_.signal(); }

// Each bit is in the page before the interrupt is raised: the driver's first read sees it.
void VirtioMmioTransport::signal_used_queue(uint16_t) {
    word(kInterruptStatus).fetch_or(kInterruptUsedBuffer, std::memory_order_acq_rel);
    trigger();
}

void VirtioMmioTransport::signal_config_change() {
    render_config(true);
    word(kInterruptStatus).fetch_or(kInterruptConfigChange, std::memory_order_acq_rel);
    trigger();
}

void VirtioMmioTransport::needs_reset() {
    {
        std::lock_guard lock(mutex_);
        if (status_ == 0) return;  // the driver reset the device meanwhile: nothing left to flag
        status_ |= virtio::kStatusDeviceNeedsReset;
        render_registers_locked();
    }
    word(kInterruptStatus).fetch_or(kInterruptConfigChange, std::memory_order_acq_rel);
    trigger();
}

}  // namespace kite
