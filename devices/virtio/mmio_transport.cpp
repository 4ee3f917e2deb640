#include "devices/virtio/mmio_transport.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "base/asio_loop.h"
#include "base/event_fd.h"
#include "devices/virtio/spec.h"

namespace kite {

namespace {

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
    std::shared_ptr<VirtioMmioTransport> t(new VirtioMmioTransport());
    const bool always_used = device->interrupt_status_always_used();
    auto core = virtio::TransportCore::create(std::move(device), memory, io, "virtio-mmio",
                                              virtio::TransportCore::SizeAtReset::kZero);
    if (!core) return std::unexpected(core.error());
    t->core_ = std::move(*core);
    auto irq = EventFd::create();
    if (!irq) return std::unexpected(irq.error());
    t->irq_fd_ = std::move(*irq);
    t->core_->attach(t, t->irq_fd_.borrow(), {});
    if (always_used) {
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
    t->put(kInterruptStatusOffset, t->always_set_interrupt_bits_);
    {
        std::lock_guard lock(t->mutex_);
        t->render_registers_locked();
    }
    // The first copy of the config space: ConfigGeneration stays 0, the driver has read nothing yet.
    t->device().read_config(0, std::span(reinterpret_cast<uint8_t*>(t->page_.get()) + kConfigOffset,
                                         kWindowSize - kConfigOffset));
    return t;
}

VirtioMmioTransport::~VirtioMmioTransport() {
    if (core_)
        spdlog::debug("virtio-mmio: device id {}: {} register or config reads exited to Kite", device().device_id(),
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
    const virtio::TransportCore& core = *core_;
    put(kMagicValue, kMagic);
    put(kVersion, 2);
    put(kDeviceId, core.device().device_id());
    put(kVendorIdReg, kVendorId);
    put(kDeviceFeatures, core.device_features_word());
    const auto* selected = core.selected();
    const QueueConfig none{};
    const QueueConfig& q = selected ? selected->config : none;
    put(kQueueNumMax, selected ? selected->max_size : 0);
    put(kQueueNum, q.size);
    put(kQueueReady, q.ready ? 1 : 0);
    put(kStatus, core.status());
    put(kQueueDescLow, uint32_t(q.desc.value()));
    put(kQueueDescHigh, uint32_t(q.desc.value() >> 32));
    put(kQueueDriverLow, uint32_t(q.avail.value()));
    put(kQueueDriverHigh, uint32_t(q.avail.value() >> 32));
    put(kQueueDeviceLow, uint32_t(q.used.value()));
    put(kQueueDeviceHigh, uint32_t(q.used.value() >> 32));
    // An absent shared memory region reads all-ones in length and base.
    uint64_t shm_len = ~0ull, shm_base = ~0ull;
    for (const ShmRegion& r : core.device().shm_regions()) {
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
    core_->device().read_config(0, config);
    std::byte* in_page = page_.get() + kConfigOffset;
    if (std::memcmp(in_page, config.data(), config.size()) != 0) {
        // Like a seqlock: a driver whose reads overlap the copy sees the generation change around them.
        word(kConfigGenerationOffset).fetch_add(1, std::memory_order_acq_rel);
        std::memcpy(in_page, config.data(), config.size());
        changed = true;
    }
    if (changed) word(kConfigGenerationOffset).fetch_add(1, std::memory_order_acq_rel);
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
        core_->log().warn("virtio-mmio: {}-byte read at register {:#x} ignored", data.size(), offset);
        std::memset(data.data(), 0, data.size());
        return;
    }
    // Acquire pairs with put() and the fetch_or in signal_*.
    uint32_t value = word(offset).load(std::memory_order_acquire);
    std::memcpy(data.data(), &value, 4);
}

void VirtioMmioTransport::write(uint64_t offset, std::span<const uint8_t> data) {
    if (offset >= kConfigOffset) {
        core_->device().write_config(offset - kConfigOffset, data);
        render_config(false);
        return;
    }
    if (data.size() != 4 || offset % 4 != 0) {
        core_->log().warn("virtio-mmio: {}-byte write at register {:#x} ignored", data.size(), offset);
        return;
    }
    uint32_t value;  // guest-controlled
    std::memcpy(&value, data.data(), 4);
    write_register(offset, value);
}

void VirtioMmioTransport::write_register(uint64_t offset, uint32_t value) {
    switch (offset) {
        case kQueueNotifyOffset:
            // guest-controlled: the queue index; unknown queues are ignored.
            core_->notify(value);
            return;
        case kInterruptAckOffset:
            // Pairs with the fetch_or in signal_used_queue / signal_config_change.
            word(kInterruptStatusOffset).fetch_and(~(value & ~always_set_interrupt_bits_), std::memory_order_acq_rel);
            return;
        default: break;
    }

    std::lock_guard lock(mutex_);
    switch (offset) {
        case kDeviceFeaturesSel: core_->select_device_features(value); break;
        case kDriverFeaturesSel: core_->select_driver_features(value); break;
        case kDriverFeatures: core_->write_driver_features(value); break;
        case kQueueSel: core_->select_queue(value); break;
        case kShmSel: shm_sel_ = value; break;
        case kStatus:
            if (core_->write_status(value)) {
                shm_sel_ = 0;
                put(kInterruptStatusOffset, always_set_interrupt_bits_);
            }
            break;
        case kQueueNum:
        case kQueueReady:
        case kQueueDescLow:
        case kQueueDescHigh:
        case kQueueDriverLow:
        case kQueueDriverHigh:
        case kQueueDeviceLow:
        case kQueueDeviceHigh: write_queue_register(offset, value); break;
        default:
            core_->log().warn("virtio-mmio: write to read-only or unknown register {:#x} ignored", offset);
            return;
    }
    render_registers_locked();
}

void VirtioMmioTransport::write_queue_register(uint64_t offset, uint32_t value) {
    QueueConfig* q = core_->configurable_queue(offset);
    if (!q) return;
    if (offset == kQueueReady) {
        // Enabling a ready queue validates it again (a no-op), unlike virtio-pci's queue_enable.
        if (value == 0) q->ready = false;
        else core_->enable_selected_queue();
        return;
    }
    if (!core_->stopped(*q, offset)) return;
    switch (offset) {
        case kQueueNum: q->size = static_cast<uint16_t>(value > 0xffff ? 0 : value); break;
        case kQueueDescLow: q->desc = with_low(q->desc, value); break;
        case kQueueDescHigh: q->desc = with_high(q->desc, value); break;
        case kQueueDriverLow: q->avail = with_low(q->avail, value); break;
        case kQueueDriverHigh: q->avail = with_high(q->avail, value); break;
        case kQueueDeviceLow: q->used = with_low(q->used, value); break;
        case kQueueDeviceHigh: q->used = with_high(q->used, value); break;
        default: break;
    }
}

void VirtioMmioTransport::trigger() { irq_fd_.signal(); }

std::string VirtioMmioTransport::describe() const {
    std::lock_guard lock(mutex_);
    return fmt::format("virtio-mmio device {}: {}", core_->device().device_id(), core_->describe());
}

// Each bit is in the page before the interrupt is raised: the driver's first read sees it.
void VirtioMmioTransport::signal_used_queue(uint16_t) {
    word(kInterruptStatusOffset).fetch_or(kInterruptUsedBuffer, std::memory_order_acq_rel);
    trigger();
}

void VirtioMmioTransport::signal_config_change() {
    render_config(true);
    word(kInterruptStatusOffset).fetch_or(kInterruptConfigChange, std::memory_order_acq_rel);
    trigger();
}

void VirtioMmioTransport::needs_reset() {
    {
        std::lock_guard lock(mutex_);
        if (!core_->flag_needs_reset()) return;
        render_registers_locked();
    }
    word(kInterruptStatusOffset).fetch_or(kInterruptConfigChange, std::memory_order_acq_rel);
    trigger();
}

}  // namespace kite
