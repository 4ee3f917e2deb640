#include "devices/virtio/pci_transport.h"

#include <poll.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>

#include "base/asio_loop.h"
#include "base/event_fd.h"
#include "devices/virtio/spec.h"

namespace kite {

namespace {

// struct virtio_pci_common_cfg (VIRTIO 1.2, 4.1.4.3): the common configuration, as the driver sees it.
struct CommonCfg {
    uint32_t device_feature_select;
    uint32_t device_feature;
    uint32_t driver_feature_select;
    uint32_t driver_feature;
    uint16_t config_msix_vector;
    uint16_t num_queues;
    uint8_t device_status;
    uint8_t config_generation;
    uint16_t queue_select;
    uint16_t queue_size;
    uint16_t queue_msix_vector;
    uint16_t queue_enable;
    uint16_t queue_notify_off;
    uint64_t queue_desc;
    uint64_t queue_driver;
    uint64_t queue_device;
    uint16_t queue_notify_data;
    uint16_t queue_reset;
};
static_assert(sizeof(CommonCfg) == VirtioPciTransport::kCommonSize && offsetof(CommonCfg, queue_reset) == 0x3a);

// The fields written by offset (the driver writes one field at a time).
constexpr uint64_t kDeviceFeatureSelect = offsetof(CommonCfg, device_feature_select);
constexpr uint64_t kDriverFeatureSelect = offsetof(CommonCfg, driver_feature_select);
constexpr uint64_t kDriverFeature = offsetof(CommonCfg, driver_feature);
constexpr uint64_t kConfigMsixVector = offsetof(CommonCfg, config_msix_vector);
constexpr uint64_t kDeviceStatus = offsetof(CommonCfg, device_status);
constexpr uint64_t kQueueSelect = offsetof(CommonCfg, queue_select);
constexpr uint64_t kQueueSize = offsetof(CommonCfg, queue_size);
constexpr uint64_t kQueueMsixVector = offsetof(CommonCfg, queue_msix_vector);
constexpr uint64_t kQueueEnable = offsetof(CommonCfg, queue_enable);
constexpr uint64_t kQueueDesc = offsetof(CommonCfg, queue_desc);
constexpr uint64_t kQueueDriver = offsetof(CommonCfg, queue_driver);
constexpr uint64_t kQueueNotifyData = offsetof(CommonCfg, queue_notify_data);

// virtio_pci_cap.cfg_type (4.1.4)
enum CapType : uint8_t { kCapCommon = 1, kCapNotify = 2, kCapIsr = 3, kCapDevice = 4 };
constexpr uint8_t kCapabilityVendor = 0x09;
constexpr uint8_t kIsrQueue = 1;
constexpr uint8_t kIsrConfig = 2;

// The body of a struct virtio_pci_cap after cap_vndr and cap_next: cap_len, cfg_type, bar, id,
// padding[2], offset, length (and for the notify capability, notify_off_multiplier).
std::vector<uint8_t> virtio_cap(CapType type, uint32_t offset, uint32_t length, std::optional<uint32_t> multiplier = {}) {
    std::vector<uint8_t> body(14 + (multiplier ? 4 : 0), 0);
    body[0] = static_cast<uint8_t>(body.size() + 2);
    body[1] = type;
    body[2] = 0;  // BAR 0
    std::memcpy(&body[6], &offset, 4);
    std::memcpy(&body[10], &length, 4);
    if (multiplier) std::memcpy(&body[14], &*multiplier, 4);
    return body;
}

uint32_t class_code(uint32_t device_id) {
    switch (device_id) {
        case virtio::kIdNet: return 0x020000;    // network controller
        case virtio::kIdBlock: return 0x018000;  // mass storage controller, other
        default: return 0xff0000;                // unassigned class
    }
}

uint64_t little_endian(std::span<const uint8_t> data) {
    uint64_t value = 0;
    std::memcpy(&value, data.data(), std::min<size_t>(data.size(), 8));
    return value;
}

bool readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

}  // namespace

Result<std::shared_ptr<VirtioPciTransport>> VirtioPciTransport::create(std::shared_ptr<VirtioDevice> device,
                                                                       GuestMemory& memory, asio::io_context& io,
                                                                       PciInterruptHost& host, uint64_t bar0,
                                                                       uint32_t first_gsi) {
    if (!device) return fail("virtio-pci: no device");
    if (!device->shm_regions().empty())
        return fail("virtio-pci: the device has shared memory regions, which only the virtio-mmio transport offers");
    if (device->device_id() > 0xffffu - kDeviceIdBase)
        return fail(fmt::format("virtio-pci: device id {} has no PCI device id (0x1040 + id must fit 16 bits)",
                                device->device_id()));
    if (device->queue_max_sizes().empty() || device->queue_max_sizes().size() > kMaxQueues)
        return fail(fmt::format("virtio-pci: {} queues; 1 to {} fit", device->queue_max_sizes().size(), kMaxQueues));
    std::shared_ptr<VirtioPciTransport> t(
        new VirtioPciTransport(static_cast<uint16_t>(device->device_id()), host, first_gsi));
    auto core = virtio::TransportCore::create(std::move(device), memory, io, "virtio-pci",
                                              virtio::TransportCore::SizeAtReset::kMaximum);
    if (!core) return std::unexpected(core.error());
    t->core_ = std::move(*core);
    if (auto ok = t->init(bar0, t); !ok) return std::unexpected(ok.error());
    return t;
}

VirtioPciTransport::VirtioPciTransport(uint16_t device_id, PciInterruptHost& host, uint32_t first_gsi)
    : host_(host),
      first_gsi_(first_gsi),
      config_(pci::DeviceIds{kVendorId, static_cast<uint16_t>(kDeviceIdBase + device_id), 1, class_code(device_id),
                             kVendorId, static_cast<uint16_t>(kDeviceIdBase + device_id)}) {}

Result<void> VirtioPciTransport::init(uint64_t bar0, std::weak_ptr<VirtioPciTransport> self) {
    std::vector<BorrowedFd> calls;
    for (unsigned q = 0; q < num_queues(); ++q) {
        auto call = EventFd::create();
        if (!call) return std::unexpected(call.error());
        queue_irqs_.push_back(IrqSource{std::move(*call), kNoVector, std::nullopt});
        calls.push_back(queue_irqs_.back().fd.borrow());
    }
    auto config_fd = EventFd::create();
    if (!config_fd) return std::unexpected(config_fd.error());
    config_irq_.fd = std::move(*config_fd);
    core_->attach(std::move(self), BorrowedFd(), std::move(calls));

    if (!config_.add_memory_bar(0, kBar0Size, bar0, false, false))
        return fail(fmt::format("virtio-pci: BAR 0 at {:#x} is not a {:#x}-aligned 32-bit address", bar0, kBar0Size));
    const uint32_t notify_length = num_queues() * kNotifyMultiplier;
    for (const auto& body : {virtio_cap(kCapCommon, kCommonOffset, kCommonSize),
                             virtio_cap(kCapNotify, kNotifyOffset, notify_length, kNotifyMultiplier),
                             virtio_cap(kCapIsr, kIsrOffset, 4),
                             virtio_cap(kCapDevice, kDeviceConfigOffset, kDeviceConfigSize)}) {
        if (config_.add_capability(kCapabilityVendor, body) == 0) return fail("virtio-pci: config space is full");
    }
    // The callbacks run under mutex_, inside this object's own calls to msix_.
    msix_.emplace(
        msix_vectors(), [this](uint16_t vector, const pci::MsixVector& state) { msix_changed(vector, state); },
        [this](uint16_t vector) { return vector_pending(vector); });
    uint8_t at = config_.add_capability(pci::kCapabilityMsix,
                                        msix_->capability(0, kMsixTableOffset, 0, kMsixPbaOffset), pci::Msix::writable());
    if (at == 0) return fail("virtio-pci: config space is full");
    msix_control_offset_ = static_cast<uint16_t>(at + 2);
    return {};
}

uint32_t VirtioPciTransport::config_read(uint16_t offset, unsigned size) {
    std::lock_guard lock(mutex_);
    return config_.read(offset, size);
}

void VirtioPciTransport::config_write(uint16_t offset, unsigned size, uint32_t value) {
    std::lock_guard lock(mutex_);
    config_.write(offset, size, value);
    if (offset < msix_control_offset_ + 2 && offset + size > msix_control_offset_)
        msix_->control_written(config_.word(msix_control_offset_));
    update_notify_bindings();
}

std::optional<uint64_t> VirtioPciTransport::bar_address(unsigned bar) const {
    uint64_t at = bar0_decode_.load(std::memory_order_acquire);
    if (bar != 0 || at == ~0ull) return std::nullopt;
    return at;
}

void VirtioPciTransport::bar_read(unsigned bar, uint64_t offset, std::span<uint8_t> data) {
    std::fill(data.begin(), data.end(), 0);
    if (bar != 0) return;
    if (offset >= kDeviceConfigOffset && offset < kDeviceConfigOffset + kDeviceConfigSize) {
        device().read_config(offset - kDeviceConfigOffset, data);
        return;
    }
    if (offset == kIsrOffset) {  // reading clears it (4.1.4.5)
        data[0] = isr_.exchange(0, std::memory_order_acq_rel);
        return;
    }
    std::lock_guard lock(mutex_);
    if (offset < kCommonOffset + kCommonSize) {
        common_read(offset - kCommonOffset, data);
    } else if (offset >= kMsixTableOffset && offset < kMsixTableOffset + msix_->table_size()) {
        msix_->table_read(offset - kMsixTableOffset, data);
    } else if (offset >= kMsixPbaOffset && offset < kMsixPbaOffset + msix_->pba_size()) {
        msix_->pba_read(offset - kMsixPbaOffset, data);
    }
}

void VirtioPciTransport::bar_write(unsigned bar, uint64_t offset, std::span<const uint8_t> data) {
    if (bar != 0) return;
    if (offset >= kDeviceConfigOffset && offset < kDeviceConfigOffset + kDeviceConfigSize) {
        device().write_config(offset - kDeviceConfigOffset, data);
        return;
    }
    if (offset >= kNotifyOffset && offset < kNotifyOffset + uint64_t{num_queues()} * kNotifyMultiplier) {
        // A notification the ioeventfd did not take (another width, or the BAR moved meanwhile).
        core_->notify((offset - kNotifyOffset) / kNotifyMultiplier);
        return;
    }
    std::lock_guard lock(mutex_);
    if (offset < kCommonOffset + kCommonSize) {
        common_write(offset - kCommonOffset, data);
    } else if (offset >= kMsixTableOffset && offset < kMsixTableOffset + msix_->table_size()) {
        msix_->table_write(offset - kMsixTableOffset, data);
    } else {
        core_->log().warn("virtio-pci: {}-byte write at BAR 0 offset {:#x} ignored", data.size(), offset);
    }
}

void VirtioPciTransport::common_read(uint64_t offset, std::span<uint8_t> data) {
    const virtio::TransportCore& core = *core_;
    CommonCfg image;
    std::memset(&image, 0, sizeof image);  // the padding at the end too: the driver may read it
    image.device_feature_select = core.device_features_sel();
    image.device_feature = core.device_features_word();
    image.driver_feature_select = core.driver_features_sel();
    image.driver_feature = core.driver_features_word();
    image.config_msix_vector = config_irq_.vector;
    image.num_queues = static_cast<uint16_t>(num_queues());
    image.device_status = static_cast<uint8_t>(core.status());
    image.config_generation = config_generation_.load(std::memory_order_acquire);
    image.queue_select = static_cast<uint16_t>(core.queue_sel());
    image.queue_msix_vector = kNoVector;
    if (const auto* q = core.selected()) {
        image.queue_size = q->config.size;
        image.queue_msix_vector = queue_irqs_[image.queue_select].vector;
        image.queue_enable = q->config.ready ? 1 : 0;
        image.queue_notify_off = image.queue_select;
        image.queue_desc = q->config.desc.value();
        image.queue_driver = q->config.avail.value();
        image.queue_device = q->config.used.value();
        image.queue_notify_data = image.queue_select;
    }
    // guest-controlled: offset and size; the caller checked that offset is inside.
    std::memcpy(data.data(), reinterpret_cast<const uint8_t*>(&image) + offset,
                std::min<uint64_t>(data.size(), kCommonSize - offset));
}

void VirtioPciTransport::common_write(uint64_t offset, std::span<const uint8_t> data) {
    const unsigned size = static_cast<unsigned>(data.size());
    const uint64_t value = little_endian(data);  // guest-controlled
    auto is = [&](uint64_t field, unsigned width) { return offset == field && size == width; };
    if (is(kDeviceFeatureSelect, 4)) {
        core_->select_device_features(static_cast<uint32_t>(value));
    } else if (is(kDriverFeatureSelect, 4)) {
        core_->select_driver_features(static_cast<uint32_t>(value));
    } else if (is(kDriverFeature, 4)) {
        core_->write_driver_features(static_cast<uint32_t>(value));
    } else if (is(kConfigMsixVector, 2)) {
        set_vector(config_irq_, checked_vector(static_cast<uint16_t>(value)));
    } else if (is(kDeviceStatus, 1)) {
        if (core_->write_status(static_cast<uint8_t>(value))) reset_locked();
    } else if (is(kQueueSelect, 2)) {
        core_->select_queue(static_cast<uint16_t>(value));
    } else if (is(kQueueSize, 2) || is(kQueueMsixVector, 2) || is(kQueueEnable, 2) ||
               (offset >= kQueueDesc && offset < kQueueNotifyData && (size == 4 || size == 8) && offset % size == 0)) {
        write_queue_field(offset, size, value);
    } else {
        core_->log().warn("virtio-pci: {}-byte write at common config {:#x} ignored", size, offset);
    }
}

void VirtioPciTransport::write_queue_field(uint64_t offset, unsigned size, uint64_t value) {
    // The vector may change while the device runs: the driver re-routes interrupts without a reset.
    if (offset == kQueueMsixVector) {
        if (core_->selected()) set_vector(queue_irqs_[core_->queue_sel()], checked_vector(static_cast<uint16_t>(value)));
        else core_->log().warn("virtio-pci: queue_msix_vector written for absent queue {}", core_->queue_sel());
        return;
    }
    QueueConfig* q = core_->configurable_queue(offset);
    if (!q || !core_->stopped(*q, offset)) return;
    if (offset == kQueueEnable) {
        if (value != 1) {
            core_->log().warn("virtio-pci: queue_enable {} ignored (only 1 may be written)", value);
            return;
        }
        core_->enable_selected_queue();
        return;
    }
    if (offset == kQueueSize) {
        q->size = static_cast<uint16_t>(value);
        return;
    }
    // The three ring addresses: 8 bytes at once, or either 4-byte half.
    const uint64_t field = offset & ~7ull;
    GuestAddress& address = field == kQueueDesc ? q->desc : field == kQueueDriver ? q->avail : q->used;
    uint64_t now = address.value();
    if (size == 8) now = value;
    else if (offset % 8 == 0) now = (now & ~0xffffffffull) | value;
    else now = (now & 0xffffffffull) | (value << 32);
    address = GuestAddress(now);
}

// After the core's reset: the vectors and the ISR are this transport's own.
void VirtioPciTransport::reset_locked() {
    for (IrqSource& source : queue_irqs_) set_vector(source, kNoVector);
    set_vector(config_irq_, kNoVector);
    isr_.store(0, std::memory_order_release);
}

uint16_t VirtioPciTransport::checked_vector(uint16_t vector) const {
    // A vector the function does not have reads back as NO_VECTOR: how the driver learns of the failure.
    return vector < msix_vectors() ? vector : kNoVector;
}

void VirtioPciTransport::set_vector(IrqSource& source, uint16_t vector) {
    source.vector = vector;
    rebind(source);
}

void VirtioPciTransport::rebind(IrqSource& source) {
    std::optional<uint32_t> want;
    if (source.vector != kNoVector && msix_->state(source.vector).deliverable) want = first_gsi_ + source.vector;
    if (want == source.bound_gsi) return;
    if (source.bound_gsi) {
        if (auto ok = host_.unbind_irqfd(source.fd.get(), *source.bound_gsi); !ok)
            core_->log().warn("virtio-pci: {}", ok.error().message);
        source.bound_gsi.reset();
    }
    if (!want) return;
    // Binding an eventfd that already counts events makes KVM inject at once: nothing pending is lost.
    if (auto ok = host_.bind_irqfd(source.fd.get(), *want); !ok) {
        core_->log().warn("virtio-pci: {}", ok.error().message);
        return;
    }
    source.bound_gsi = want;
}

void VirtioPciTransport::msix_changed(uint16_t vector, const pci::MsixVector& state) {
    // The route first: binding an irqfd below may inject at once.
    if (state.deliverable) {
        if (auto ok = host_.set_msi_route(first_gsi_ + vector, state.address, state.data); !ok)
            core_->log().warn("virtio-pci: MSI-X vector {}: {}", vector, ok.error().message);
    }
    if (config_irq_.vector == vector) rebind(config_irq_);
    for (IrqSource& source : queue_irqs_)
        if (source.vector == vector) rebind(source);
}

bool VirtioPciTransport::vector_pending(uint16_t vector) const {
    auto pending = [vector](const IrqSource& s) { return s.vector == vector && waiting(s); };
    if (pending(config_irq_)) return true;
    return std::any_of(queue_irqs_.begin(), queue_irqs_.end(), pending);
}

bool VirtioPciTransport::waiting(const IrqSource& source) { return !source.bound_gsi && readable(source.fd.get()); }

void VirtioPciTransport::update_notify_bindings() {
    const std::optional<uint64_t> at = config_.bar_address(0);
    bar0_decode_.store(at.value_or(~0ull), std::memory_order_release);
    if (at == notify_bound_at_) return;
    for (unsigned q = 0; q < num_queues(); ++q) {
        const int fd = core_->kick_fd(q);
        const uint64_t offset = kNotifyOffset + uint64_t{q} * kNotifyMultiplier;
        if (notify_bound_at_)
            if (auto ok = host_.unbind_ioeventfd(fd, *notify_bound_at_ + offset, 0, std::nullopt); !ok)
                core_->log().warn("virtio-pci: {}", ok.error().message);
        if (at)
            if (auto ok = host_.bind_ioeventfd(fd, *at + offset, 0, std::nullopt); !ok)
                core_->log().warn("virtio-pci: {}", ok.error().message);
    }
    notify_bound_at_ = at;
}

std::string VirtioPciTransport::describe() const {
    std::lock_guard lock(mutex_);
    auto where = [](const IrqSource& s) {
        if (s.vector == kNoVector) return std::string("no vector");
        return fmt::format("vector {} {}", s.vector,
                           s.bound_gsi ? fmt::format("-> GSI {}", *s.bound_gsi) : std::string("(not deliverable)"));
    };
    std::string out = fmt::format("virtio-pci device {} at BAR {:#x}: MSI-X {}{}; config {}",
                                  core_->device().device_id(), bar0_decode_.load(std::memory_order_acquire),
                                  msix_->enabled() ? "enabled" : "disabled",
                                  msix_->function_masked() ? " (function masked)" : "", where(config_irq_));
    for (size_t q = 0; q < queue_irqs_.size(); ++q) out += fmt::format("; queue {} {}", q, where(queue_irqs_[q]));
    return out + "; " + core_->describe();
}

void VirtioPciTransport::raise(IrqSource& source, uint8_t isr_bit) {
    isr_.fetch_or(isr_bit, std::memory_order_acq_rel);
    source.fd.signal();
}

void VirtioPciTransport::signal_used_queue(uint16_t queue) {
    if (queue < queue_irqs_.size()) raise(queue_irqs_[queue], kIsrQueue);
}

void VirtioPciTransport::signal_config_change() {
    config_generation_.fetch_add(1, std::memory_order_acq_rel);
    raise(config_irq_, kIsrConfig);
}

void VirtioPciTransport::needs_reset() {
    {
        std::lock_guard lock(mutex_);
        if (!core_->flag_needs_reset()) return;
    }
    raise(config_irq_, kIsrConfig);
}

}  // namespace kite
