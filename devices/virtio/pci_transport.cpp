#include "devices/virtio/pci_transport.h"

#include <poll.h>

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

// struct virtio_pci_common_cfg (VIRTIO 1.2, 4.1.4.3), offsets within the common configuration.
enum Common : uint64_t {
    kDeviceFeatureSelect = 0x00,
    kDeviceFeature = 0x04,
    kDriverFeatureSelect = 0x08,
    kDriverFeature = 0x0c,
    kConfigMsixVector = 0x10,
    kNumQueues = 0x12,
    kDeviceStatus = 0x14,
    kConfigGeneration = 0x15,
    kQueueSelect = 0x16,
    kQueueSize = 0x18,
    kQueueMsixVector = 0x1a,
    kQueueEnable = 0x1c,
    kQueueNotifyOff = 0x1e,
    kQueueDesc = 0x20,
    kQueueDriver = 0x28,
    kQueueDevice = 0x30,
    kQueueNotifyData = 0x38,
    kQueueReset = 0x3a,
};

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
    std::shared_ptr<VirtioPciTransport> t(new VirtioPciTransport(std::move(device), memory, io, host, first_gsi));
    if (auto ok = t->init(bar0); !ok) return std::unexpected(ok.error());
    return t;
}

VirtioPciTransport::VirtioPciTransport(std::shared_ptr<VirtioDevice> device, GuestMemory& memory,
                                       asio::io_context& io, PciInterruptHost& host, uint32_t first_gsi)
    : device_(std::move(device)),
      memory_(memory),
      io_(io),
      host_(host),
      first_gsi_(first_gsi),
      config_(pci::DeviceIds{kVendorId, static_cast<uint16_t>(kDeviceIdBase + device_->device_id()), 1,
                             class_code(device_->device_id()), kVendorId,
                             static_cast<uint16_t>(kDeviceIdBase + device_->device_id())}) {}

Result<void> VirtioPciTransport::init(uint64_t bar0) {
    for (uint16_t max : device_->queue_max_sizes()) {
        QueueState q;
        q.max_size = max;
        q.config.size = max;
        auto kick = EventFd::create();
        if (!kick) return std::unexpected(kick.error());
        auto call = EventFd::create();
        if (!call) return std::unexpected(call.error());
        q.kick = std::move(*kick);
        q.irq.fd = std::move(*call);
        queues_.push_back(std::move(q));
    }
    auto config_fd = EventFd::create();
    if (!config_fd) return std::unexpected(config_fd.error());
    config_irq_.fd = std::move(*config_fd);

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

VirtioPciTransport::~VirtioPciTransport() {
    // The device may hold a reference to this transport as its VirtioInterrupt until it is reset.
    if (device_active_) device_->reset();
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
        device_->read_config(offset - kDeviceConfigOffset, data);
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
        device_->write_config(offset - kDeviceConfigOffset, data);
        return;
    }
    if (offset >= kNotifyOffset && offset < kNotifyOffset + uint64_t{num_queues()} * kNotifyMultiplier) {
        // A notification the ioeventfd did not take (another width, or the BAR moved meanwhile).
        queues_[(offset - kNotifyOffset) / kNotifyMultiplier].kick.signal();
        return;
    }
    std::lock_guard lock(mutex_);
    if (offset < kCommonOffset + kCommonSize) {
        common_write(offset - kCommonOffset, data);
    } else if (offset >= kMsixTableOffset && offset < kMsixTableOffset + msix_->table_size()) {
        msix_->table_write(offset - kMsixTableOffset, data);
    } else {
        log_.warn("virtio-pci: {}-byte write at BAR 0 offset {:#x} ignored", data.size(), offset);
    }
}

void VirtioPciTransport::common_read(uint64_t offset, std::span<uint8_t> data) {
    std::array<uint8_t, kCommonSize> image{};
    auto put = [&image](uint64_t at, auto value) { std::memcpy(&image[at], &value, sizeof value); };
    const uint64_t features = device_->device_features();
    put(kDeviceFeatureSelect, device_features_sel_);
    put(kDeviceFeature, device_features_sel_ < 2 ? uint32_t(features >> (32 * device_features_sel_)) : 0u);
    put(kDriverFeatureSelect, driver_features_sel_);
    put(kDriverFeature, driver_features_sel_ < 2 ? uint32_t(driver_features_ >> (32 * driver_features_sel_)) : 0u);
    put(kConfigMsixVector, config_irq_.vector);
    put(kNumQueues, static_cast<uint16_t>(num_queues()));
    put(kDeviceStatus, status_);
    put(kConfigGeneration, config_generation_.load(std::memory_order_acquire));
    put(kQueueSelect, queue_sel_);
    if (queue_sel_ < queues_.size()) {
        const QueueState& q = queues_[queue_sel_];
        put(kQueueSize, q.config.size);
        put(kQueueMsixVector, q.irq.vector);
        put(kQueueEnable, static_cast<uint16_t>(q.config.ready ? 1 : 0));
        put(kQueueNotifyOff, queue_sel_);
        put(kQueueDesc, q.config.desc.value());
        put(kQueueDriver, q.config.avail.value());
        put(kQueueDevice, q.config.used.value());
        put(kQueueNotifyData, queue_sel_);
    } else {
        put(kQueueMsixVector, kNoVector);
    }
    // guest-controlled: offset and size; the caller checked that offset is inside.
    std::memcpy(data.data(), &image[offset], std::min<uint64_t>(data.size(), kCommonSize - offset));
}

void VirtioPciTransport::common_write(uint64_t offset, std::span<const uint8_t> data) {
    const unsigned size = static_cast<unsigned>(data.size());
    const uint64_t value = little_endian(data);  // guest-controlled
    auto is = [&](uint64_t field, unsigned width) { return offset == field && size == width; };
    if (is(kDeviceFeatureSelect, 4)) {
        device_features_sel_ = static_cast<uint32_t>(value);
    } else if (is(kDriverFeatureSelect, 4)) {
        driver_features_sel_ = static_cast<uint32_t>(value);
    } else if (is(kDriverFeature, 4)) {
        if (status_ & virtio::kStatusFeaturesOk) {
            log_.warn("virtio-pci: driver_feature written after FEATURES_OK, ignored");
        } else if (driver_features_sel_ < 2) {
            const unsigned shift = 32 * driver_features_sel_;
            driver_features_ = (driver_features_ & ~(0xffffffffull << shift)) | (value << shift);
        }
    } else if (is(kConfigMsixVector, 2)) {
        set_vector(config_irq_, checked_vector(static_cast<uint16_t>(value)));
    } else if (is(kDeviceStatus, 1)) {
        write_status(static_cast<uint8_t>(value));
    } else if (is(kQueueSelect, 2)) {
        queue_sel_ = static_cast<uint16_t>(value);
    } else if (is(kQueueSize, 2) || is(kQueueMsixVector, 2) || is(kQueueEnable, 2) ||
               (offset >= kQueueDesc && offset < kQueueNotifyData && (size == 4 || size == 8) && offset % size == 0)) {
        write_queue_field(offset, size, value);
    } else {
        log_.warn("virtio-pci: {}-byte write at common config {:#x} ignored", size, offset);
    }
}

void VirtioPciTransport::write_queue_field(uint64_t offset, unsigned size, uint64_t value) {
    if (queue_sel_ >= queues_.size()) {
        log_.warn("virtio-pci: queue field {:#x} written for absent queue {}", offset, queue_sel_);
        return;
    }
    QueueState& q = queues_[queue_sel_];
    if (offset == kQueueMsixVector) {
        set_vector(q.irq, checked_vector(static_cast<uint16_t>(value)));
        return;
    }
    if (status_ & virtio::kStatusDriverOk) {
        log_.warn("virtio-pci: queue field {:#x} written after DRIVER_OK, ignored", offset);
        return;
    }
    if (q.config.ready) {
        log_.warn("virtio-pci: queue {} field {:#x} written while enabled, ignored", queue_sel_, offset);
        return;
    }
    if (offset == kQueueEnable) {
        if (value != 1) {
            log_.warn("virtio-pci: queue_enable {} ignored (only 1 may be written)", value);
            return;
        }
        if (auto ok = Queue::validate(memory_, q.config, q.max_size); !ok) {
            log_.warn("virtio-pci: queue {} refused: {}", queue_sel_, ok.error().message);
            status_ |= virtio::kStatusDeviceNeedsReset;
            return;
        }
        q.config.ready = true;
        return;
    }
    if (offset == kQueueSize) {
        q.config.size = static_cast<uint16_t>(value);
        return;
    }
    // The three ring addresses: 8 bytes at once, or either 4-byte half.
    const uint64_t field = offset & ~7ull;
    GuestAddress& address = field == kQueueDesc ? q.config.desc : field == kQueueDriver ? q.config.avail : q.config.used;
    uint64_t now = address.value();
    if (size == 8) now = value;
    else if (offset % 8 == 0) now = (now & ~0xffffffffull) | value;
    else now = (now & 0xffffffffull) | (value << 32);
    address = GuestAddress(now);
}

void VirtioPciTransport::write_status(uint8_t value) {
    if (value == 0) {
        reset_locked();
        return;
    }
    auto update = virtio::apply_status_write(status_, value, driver_features_, device_->device_features(), log_,
                                             "virtio-pci");
    status_ = static_cast<uint8_t>(update.status);
    if (update.activate) post_activate_locked();
}

void VirtioPciTransport::post_activate_locked() {
    std::vector<QueueConfig> configs;
    std::vector<int> kicks, calls;
    for (const QueueState& q : queues_) {
        configs.push_back(q.config);
        kicks.push_back(q.kick.get());
        calls.push_back(q.irq.fd.get());
    }
    device_active_ = true;
    std::weak_ptr<VirtioPciTransport> weak = weak_from_this();
    asio::post(io_, [weak, configs = std::move(configs), kicks = std::move(kicks), calls = std::move(calls),
                     features = driver_features_] {
        auto self = weak.lock();
        if (!self) return;
        ActivateContext ctx{self->memory_, configs, kicks, -1, *self, self->io_, features, false, calls};
        if (auto r = self->device_->activate(std::move(ctx)); !r) {
            self->log_.warn("virtio-pci: device {} failed to activate: {}", self->device_->device_id(),
                            r.error().message);
            self->needs_reset();
        }
    });
}

void VirtioPciTransport::reset_locked() {
    const bool was_active = device_active_;
    status_ = 0;
    device_features_sel_ = driver_features_sel_ = 0;
    driver_features_ = 0;
    queue_sel_ = 0;
    for (QueueState& q : queues_) {
        q.config = QueueConfig{};
        q.config.size = q.max_size;
        set_vector(q.irq, kNoVector);
    }
    set_vector(config_irq_, kNoVector);
    isr_.store(0, std::memory_order_release);
    device_active_ = false;
    if (!was_active) return;
    std::weak_ptr<VirtioPciTransport> weak = weak_from_this();
    asio::post(io_, [weak] {
        if (auto self = weak.lock()) self->device_->reset();
    });
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
            log_.warn("virtio-pci: {}", ok.error().message);
        source.bound_gsi.reset();
    }
    if (!want) return;
    // Binding an eventfd that already counts events makes KVM inject at once: nothing pending is lost.
    if (auto ok = host_.bind_irqfd(source.fd.get(), *want); !ok) {
        log_.warn("virtio-pci: {}", ok.error().message);
        return;
    }
    source.bound_gsi = want;
}

void VirtioPciTransport::msix_changed(uint16_t vector, const pci::MsixVector& state) {
    // The route first: binding an irqfd below may inject at once.
    if (state.deliverable) {
        if (auto ok = host_.set_msi_route(first_gsi_ + vector, state.address, state.data); !ok)
            log_.warn("virtio-pci: MSI-X vector {}: {}", vector, ok.error().message);
    }
    if (config_irq_.vector == vector) rebind(config_irq_);
    for (QueueState& q : queues_)
        if (q.irq.vector == vector) rebind(q.irq);
}

bool VirtioPciTransport::vector_pending(uint16_t vector) const {
    auto pending = [vector](const IrqSource& s) { return s.vector == vector && !s.bound_gsi && readable(s.fd.get()); };
    if (pending(config_irq_)) return true;
    return std::any_of(queues_.begin(), queues_.end(), [&](const QueueState& q) { return pending(q.irq); });
}

void VirtioPciTransport::update_notify_bindings() {
    const std::optional<uint64_t> at = config_.bar_address(0);
    bar0_decode_.store(at.value_or(~0ull), std::memory_order_release);
    if (at == notify_bound_at_) return;
    for (unsigned q = 0; q < num_queues(); ++q) {
        const int fd = queues_[q].kick.get();
        const uint64_t offset = kNotifyOffset + uint64_t{q} * kNotifyMultiplier;
        if (notify_bound_at_)
            if (auto ok = host_.unbind_ioeventfd(fd, *notify_bound_at_ + offset, 0, std::nullopt); !ok)
                log_.warn("virtio-pci: {}", ok.error().message);
        if (at)
            if (auto ok = host_.bind_ioeventfd(fd, *at + offset, 0, std::nullopt); !ok)
                log_.warn("virtio-pci: {}", ok.error().message);
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
    std::string out = fmt::format("virtio-pci device {} at BAR {:#x}: status {:#x}, MSI-X {}{}; config {}",
                                  device_->device_id(), bar0_decode_.load(std::memory_order_acquire), status_,
                                  msix_->enabled() ? "enabled" : "disabled",
                                  msix_->function_masked() ? " (function masked)" : "", where(config_irq_));
    for (size_t q = 0; q < queues_.size(); ++q) out += fmt::format("; queue {} {}", q, where(queues_[q].irq));
    return out;
}

void VirtioPciTransport::raise(IrqSource& source, uint8_t isr_bit) {
    isr_.fetch_or(isr_bit, std::memory_order_acq_rel);
    source.fd.signal();
}

void VirtioPciTransport::signal_used_queue(uint16_t queue) {
    if (queue < queues_.size()) raise(queues_[queue].irq, kIsrQueue);
}

void VirtioPciTransport::signal_config_change() {
    config_generation_.fetch_add(1, std::memory_order_acq_rel);
    raise(config_irq_, kIsrConfig);
}

void VirtioPciTransport::needs_reset() {
    {
        std::lock_guard lock(mutex_);
        if (status_ == 0) return;  // the driver reset the device meanwhile: nothing left to flag
        status_ |= virtio::kStatusDeviceNeedsReset;
    }
    raise(config_irq_, kIsrConfig);
}

}  // namespace kite
