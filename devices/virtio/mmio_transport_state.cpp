// Snapshot state of a virtio-mmio transport: save_state() / restore_state().
//
// Layout (little-endian), version 1: u8 version, the common head (transport_state.h: device id, queue
// count, status, feature selects and driver features, queue_sel), u32 shm_sel, u32 interrupt_status,
// u32 config_generation, then the common per-queue records.
//
// Ring positions are not in the blob: save_state() quiesces the device first, so every chain it popped
// is in the used ring, and a restored device continues each queue at used.idx in guest memory.
#include <string>

#include "devices/virtio/mmio_transport.h"
#include "devices/virtio/transport_state.h"

namespace kite {

namespace {

constexpr uint8_t kStateVersion = 1;
constexpr size_t kHeaderBytes = 1 + virtio::kCommonHeadBytes + 12;
constexpr uint32_t kKnownInterruptBits = 3;  // used buffer, config change

}  // namespace

std::vector<uint8_t> VirtioMmioTransport::save_state() {
    // Completions write used rings and may raise the interrupt: before the registers are read.
    device().quiesce();
    std::lock_guard lock(mutex_);
    const virtio::CommonState common = core_->save();
    virtio::StateWriter w = virtio::start_blob(kStateVersion, common);
    w.put<uint32_t>(shm_sel_);
    w.put<uint32_t>(word(kInterruptStatusOffset).load(std::memory_order_acquire));  // pairs with signal_*
    w.put<uint32_t>(word(kConfigGenerationOffset).load(std::memory_order_acquire));
    for (const virtio::SavedQueue& q : common.queues) virtio::put_queue(w, q);
    return std::move(w.out);
}

Result<void> VirtioMmioTransport::restore_state(std::span<const uint8_t> bytes) {
    const std::string what = "virtio-mmio state (device id " + std::to_string(device().device_id()) + ")";
    virtio::StateReader r(bytes);
    const virtio::BlobLayout layout{kStateVersion, kHeaderBytes, kHeaderBytes + virtio::kSavedQueueBytes * num_queues()};
    auto common = virtio::open_blob(r, bytes, layout, device().device_id(), num_queues(), what);
    if (!common) return std::unexpected(common.error());
    const auto shm_sel = r.get<uint32_t>();
    const auto interrupt_status = r.get<uint32_t>();
    const auto config_generation = r.get<uint32_t>();
    for (unsigned i = 0; i < num_queues(); ++i) {
        auto q = virtio::get_queue(r, what);
        if (!q) return std::unexpected(q.error());
        common->queues.push_back(*q);
    }
    if (auto ok = core_->check(*common, what); !ok) return ok;
    if (interrupt_status & ~kKnownInterruptBits)
        return fail(what + ": interrupt status " + std::to_string(interrupt_status) + " has unknown bits");

    std::lock_guard lock(mutex_);
    if (core_->in_use()) return fail(what + ": the driver already uses this transport");
    shm_sel_ = shm_sel;
    put(kInterruptStatusOffset, interrupt_status | always_set_interrupt_bits_);
    put(kConfigGenerationOffset, config_generation);
    core_->restore(*common);
    render_registers_locked();
    // An interrupt raised just before the snapshot may not have reached the saved local APIC state (irqfd
    // injection is asynchronous): raise it again. The driver reads InterruptStatus, so a spare one is harmless.
    if (interrupt_status != 0) trigger();
    return {};
}

}  // namespace kite
