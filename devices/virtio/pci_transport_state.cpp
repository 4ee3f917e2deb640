// Snapshot state of a virtio-pci function: save_state() / restore_state().
//
// Layout (little-endian), version 1: u8 version, the common head (transport_state.h), u8 isr,
// u8 config_generation, u16 config_msix_vector, u8 config_pending, the 256 bytes of config space, then
// per MSI-X vector (queues + 1): u32 address_low, u32 address_high, u32 data, u32 vector_control, then
// per queue: the common queue record, u16 msix_vector, u8 pending.
// `pending`: an interrupt waited, unbound, in that eventfd (its vector masked): the PBA's content.
//
// A restore replays what a driver would write: config space (through a copy first, so that a blob for
// another function is refused before anything changes), the MSI-X table, then Message Control, whose
// write routes every deliverable vector and binds its eventfds as the guest's own write would.
#include <string>

#include "devices/virtio/pci_transport.h"
#include "devices/virtio/transport_state.h"

namespace kite {

namespace {

constexpr uint8_t kStateVersion = 1;
constexpr size_t kHeaderBytes = 1 + virtio::kCommonHeadBytes + 5 + pci::kConfigSpaceSize;
constexpr size_t kVectorBytes = pci::kMsixEntrySize;
constexpr size_t kQueueBytes = virtio::kSavedQueueBytes + 3;
constexpr uint8_t kKnownIsrBits = 3;  // queue, config change

struct SavedIrq {
    uint16_t vector;
    uint8_t pending;
};

}  // namespace

std::vector<uint8_t> VirtioPciTransport::save_state() {
    // Completions write used rings and may raise interrupts: before the state is read.
    device().quiesce();
    // Atomics, which need no lock: pair with raise() and signal_config_change().
    const uint8_t isr = isr_.load(std::memory_order_acquire);
    const uint8_t config_generation = config_generation_.load(std::memory_order_acquire);
    std::lock_guard lock(mutex_);
    const virtio::CommonState common = core_->save();
    virtio::StateWriter w = virtio::start_blob(kStateVersion, common);
    w.put<uint8_t>(isr);
    w.put<uint8_t>(config_generation);
    w.put<uint16_t>(config_irq_.vector);
    w.put<uint8_t>(waiting(config_irq_) ? 1 : 0);
    for (uint16_t at = 0; at < pci::kConfigSpaceSize; at += 4) w.put<uint32_t>(config_.read(at, 4));
    for (uint32_t at = 0; at < msix_->table_size(); at += 4) {
        uint32_t word = 0;
        msix_->table_read(at, std::span(reinterpret_cast<uint8_t*>(&word), 4));
        w.put<uint32_t>(word);
    }
    for (size_t q = 0; q < common.queues.size(); ++q) {
        virtio::put_queue(w, common.queues[q]);
        w.put<uint16_t>(queue_irqs_[q].vector);
        w.put<uint8_t>(waiting(queue_irqs_[q]) ? 1 : 0);
    }
    return std::move(w.out);
}

Result<void> VirtioPciTransport::restore_state(std::span<const uint8_t> bytes) {
    const std::string what = "virtio-pci state (device id " + std::to_string(device().device_id()) + ")";
    virtio::StateReader r(bytes);
    const virtio::BlobLayout layout{kStateVersion, kHeaderBytes, kHeaderBytes + kVectorBytes * msix_vectors() + kQueueBytes * num_queues()};
    auto common = virtio::open_blob(r, bytes, layout, device().device_id(), num_queues(), what);
    if (!common) return std::unexpected(common.error());
    const auto isr = r.get<uint8_t>();
    const auto config_generation = r.get<uint8_t>();
    std::vector<SavedIrq> irqs(1);  // [0]: config changes, then one per queue
    irqs[0].vector = r.get<uint16_t>();
    irqs[0].pending = r.get<uint8_t>();
    std::vector<uint32_t> config_words(pci::kConfigSpaceSize / 4);
    for (uint32_t& word : config_words) word = r.get<uint32_t>();
    std::vector<uint32_t> table_words(msix_vectors() * kVectorBytes / 4);
    for (uint32_t& word : table_words) word = r.get<uint32_t>();
    for (unsigned i = 0; i < num_queues(); ++i) {
        auto q = virtio::get_queue(r, what);
        if (!q) return std::unexpected(q.error());
        common->queues.push_back(*q);
        irqs.push_back({r.get<uint16_t>(), r.get<uint8_t>()});
    }

    if (auto ok = core_->check(*common, what); !ok) return ok;
    if (common->driver.queue_sel > 0xffff)
        return fail(what + ": queue_select " + std::to_string(common->driver.queue_sel) + " is wider than 16 bits");
    if (isr & ~kKnownIsrBits) return fail(what + ": ISR status " + std::to_string(isr) + " has unknown bits");
    for (const SavedIrq& irq : irqs) {
        if (irq.vector != kNoVector && irq.vector >= msix_vectors())
            return fail(what + ": MSI-X vector " + std::to_string(irq.vector) + " of " +
                        std::to_string(msix_vectors()) + " does not exist");
        if (irq.pending > 1 || (irq.pending && irq.vector == kNoVector))
            return fail(what + ": a pending flag is not 0 or 1, or is set without a vector");
    }
    for (size_t v = 0; v < msix_vectors(); ++v)
        if (table_words[v * 4 + 3] > 1)
            return fail(what + ": MSI-X vector " + std::to_string(v) + " control " +
                        std::to_string(table_words[v * 4 + 3]) + " has reserved bits");

    std::lock_guard lock(mutex_);
    if (core_->in_use()) return fail(what + ": the driver already uses this function");
    // What the guest could not have written (ids, capabilities, read-only bits) must be as saved.
    pci::ConfigSpace config = config_;
    for (uint16_t at = 0; at < pci::kConfigSpaceSize; at += 4) config.write(at, 4, config_words[at / 4]);
    for (uint16_t at = 0; at < pci::kConfigSpaceSize; at += 4)
        if (config.read(at, 4) != config_words[at / 4])
            return fail(fmt::format("{}: config space word at {:#x} is {:#x}, this function has {:#x} (give the "
                                    "same devices in the same order as the snapshotted VM)",
                                    what, at, config_words[at / 4], config.read(at, 4)));

    isr_.store(isr, std::memory_order_release);
    config_generation_.store(config_generation, std::memory_order_release);
    config_irq_.vector = irqs[0].vector;
    for (size_t q = 0; q < queue_irqs_.size(); ++q) queue_irqs_[q].vector = irqs[q + 1].vector;
    // Before the vectors are routed: an eventfd bound with a count makes KVM inject at once, as it would
    // have for the guest; one left unbound keeps it pending.
    if (irqs[0].pending) config_irq_.fd.signal();
    for (size_t q = 0; q < queue_irqs_.size(); ++q)
        if (irqs[q + 1].pending) queue_irqs_[q].fd.signal();
    config_ = config;
    for (uint32_t at = 0; at < msix_->table_size(); at += 4)
        msix_->table_write(at, std::span(reinterpret_cast<const uint8_t*>(&table_words[at / 4]), 4));
    msix_->control_written(config_.word(msix_control_offset_));  // routes and binds every vector
    rebind(config_irq_);  // sources without a vector, which no vector's change reaches
    for (IrqSource& source : queue_irqs_) rebind(source);
    update_notify_bindings();
    core_->restore(*common);
    return {};
}

}  // namespace kite
