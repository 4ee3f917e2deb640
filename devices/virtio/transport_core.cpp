#include "devices/virtio/transport_core.h"

#include <utility>

#include "base/asio_loop.h"
#include "devices/virtio/device_status.h"
#include "devices/virtio/queue.h"
#include "devices/virtio/spec.h"

namespace kite::virtio {

namespace {

constexpr uint32_t kKnownStatusBits = kStatusAcknowledge | kStatusDriver | kStatusDriverOk | kStatusFeaturesOk |
                                      kStatusDeviceNeedsReset | kStatusFailed;

uint32_t word_of(uint64_t value, uint32_t sel) { return sel < 2 ? uint32_t(value >> (32 * sel)) : 0; }

}  // namespace

Result<std::unique_ptr<TransportCore>> TransportCore::create(std::shared_ptr<VirtioDevice> device,
                                                             GuestMemory& memory, asio::io_context& io,
                                                             std::string_view name, SizeAtReset size_at_reset) {
    std::unique_ptr<TransportCore> core(new TransportCore(std::move(device), memory, io, name, size_at_reset));
    for (QueueState& q : core->queues_) {
        auto kick = EventFd::create();
        if (!kick) return std::unexpected(kick.error());
        q.kick = std::move(*kick);
    }
    return core;
}

TransportCore::TransportCore(std::shared_ptr<VirtioDevice> device, GuestMemory& memory, asio::io_context& io,
                             std::string_view name, SizeAtReset size_at_reset)
    : device_(std::move(device)), memory_(memory), io_(io), name_(name), size_at_reset_(size_at_reset) {
    for (uint16_t max : device_->queue_max_sizes()) {
        QueueState q;
        q.max_size = max;
        if (size_at_reset_ == SizeAtReset::kMaximum) q.config.size = max;
        queues_.push_back(std::move(q));
    }
}

TransportCore::~TransportCore() {
    // A reset the driver asked for may still be pending (and is dropped with the owner).
    if (device_active_ || device_running_) device_->reset();
}

void TransportCore::attach(std::weak_ptr<VirtioInterrupt> owner, BorrowedFd irq, std::vector<BorrowedFd> calls) {
    owner_ = std::move(owner);
    irq_fd_ = irq;
    call_fds_ = std::move(calls);
}

void TransportCore::notify(uint64_t queue) const {
    if (queue < queues_.size()) queues_[queue].kick.signal();
}

std::string TransportCore::describe() const {
    std::string out = fmt::format("status {:#x}", regs_.status);
    const bool event_idx = (regs_.driver_features & kFeatureEventIdx) != 0;
    for (unsigned i = 0; i < queues_.size(); ++i) {
        const QueueConfig& q = queues_[i].config;
        if (!q.ready) continue;
        auto u16 = [&](GuestAddress ring, uint64_t offset) {
            auto at = ring.checked_add(offset);
            auto v = at ? memory_.read_obj<uint16_t>(*at) : std::nullopt;
            return v ? fmt::format("{}", *v) : std::string("?");
        };
        out += fmt::format("; queue {} (size {}): avail idx {} flags {}, used idx {} flags {}", i, q.size,
                           u16(q.avail, 2), u16(q.avail, 0), u16(q.used, 2), u16(q.used, 0));
        if (event_idx)
            out += fmt::format(", used_event {}, avail_event {}", u16(q.avail, 4 + 2ull * q.size),
                               u16(q.used, 4 + 8ull * q.size));
        if (auto kick = queues_[i].kick.peek(); kick && *kick != 0) out += fmt::format(", {} kick(s) unread", *kick);
    }
    return out;
}

uint32_t TransportCore::device_features_word() const {
    return word_of(device_->device_features(), regs_.device_features_sel);
}

uint32_t TransportCore::driver_features_word() const { return word_of(regs_.driver_features, regs_.driver_features_sel); }

void TransportCore::write_driver_features(uint32_t value) {
    if (regs_.status & kStatusFeaturesOk) {
        log_.warn("{}: driver features written after FEATURES_OK, ignored", name_);
    } else if (regs_.driver_features_sel < 2) {
        const unsigned shift = 32 * regs_.driver_features_sel;
        regs_.driver_features = (regs_.driver_features & ~(0xffffffffull << shift)) | (uint64_t{value} << shift);
    }
}

QueueConfig* TransportCore::configurable_queue(uint64_t reg) {
    if (regs_.queue_sel >= queues_.size()) {
        log_.warn("{}: queue register {:#x} written for absent queue {}", name_, reg, regs_.queue_sel);
        return nullptr;
    }
    if (regs_.status & kStatusDriverOk) {
        log_.warn("{}: queue register {:#x} written after DRIVER_OK, ignored", name_, reg);
        return nullptr;
    }
    return &queues_[regs_.queue_sel].config;
}

bool TransportCore::stopped(const QueueConfig& queue, uint64_t reg) {
    if (!queue.ready) return true;
    log_.warn("{}: queue {} register {:#x} written while ready, ignored", name_, regs_.queue_sel, reg);
    return false;
}

void TransportCore::enable_selected_queue() {
    QueueState& q = queues_[regs_.queue_sel];
    if (auto ok = Queue::validate(memory_, q.config, q.max_size); !ok) {
        // The queue stays not ready; the device cannot work as configured.
        log_.warn("{}: queue {} refused: {}", name_, regs_.queue_sel, ok.error().message);
        regs_.status |= kStatusDeviceNeedsReset;
        return;
    }
    q.config.ready = true;
}

bool TransportCore::write_status(uint32_t value) {
    if (value == 0) {
        reset();
        return true;
    }
    // guest-controlled.
    auto update = apply_status_write(regs_.status, value, regs_.driver_features, device_->device_features(), log_, name_);
    regs_.status = update.status;
    if (update.activate) post_activate(false);
    return false;
}

bool TransportCore::flag_needs_reset() {
    if (regs_.status == 0) return false;  // the driver reset the device meanwhile: nothing left to flag
    regs_.status |= kStatusDeviceNeedsReset;
    return true;
}

void TransportCore::reset() {
    const bool was_active = device_active_;
    regs_ = DriverRegisters{};
    for (QueueState& q : queues_) {
        q.config = QueueConfig{};
        if (size_at_reset_ == SizeAtReset::kMaximum) q.config.size = q.max_size;
    }
    device_active_ = false;
    if (!was_active) return;
    std::lock_guard lock(pending_mutex_);
    pending_.activate.reset();  // never ran: nothing to undo
    pending_.reset = true;
    schedule_locked();
}

void TransportCore::post_activate(bool restored) {
    std::vector<QueueConfig> configs;
    std::vector<BorrowedFd> kicks, calls = call_fds_;
    for (const QueueState& q : queues_) {
        configs.push_back(q.config);
        kicks.push_back(q.kick.borrow());
    }
    device_active_ = true;
    std::lock_guard lock(pending_mutex_);
    pending_.activate = Activation{std::move(configs), std::move(kicks), std::move(calls), regs_.driver_features, restored};
    schedule_locked();
}

void TransportCore::schedule_locked() {
    if (pending_.posted) return;
    pending_.posted = true;
    // `this` lives as long as the owner: it is the owner's member.
    asio::post(io_, [owner = owner_, this] {
        if (auto alive = owner.lock()) run_pending(*alive);
    });
}

void TransportCore::run_pending(VirtioInterrupt& owner) {
    Pending work;
    {
        std::lock_guard lock(pending_mutex_);
        work = std::exchange(pending_, Pending{});
    }
    if ((work.reset || work.activate) && device_running_) {
        device_->reset();
        device_running_ = false;
    }
    if (!work.activate) return;
    Activation& a = *work.activate;
    device_running_ = true;  // a failed activation is reset too, as the driver's reset would
    ActivateContext ctx{memory_, a.configs, a.kicks, irq_fd_, owner, io_, a.features, a.restored, a.calls};
    if (auto r = device_->activate(std::move(ctx)); !r) {
        log_.warn("{}: device {} failed to activate: {}", name_, device_->device_id(), r.error().message);
        owner.needs_reset();
    }
}

CommonState TransportCore::save() const {
    CommonState s{device_->device_id(), regs_, {}};
    for (const QueueState& q : queues_) s.queues.push_back({q.max_size, q.config});
    return s;
}

Result<void> TransportCore::check(const CommonState& s, const std::string& what) const {
    // The same checks the register writes make, so a restored transport is one a driver could reach.
    if (s.driver.status & ~kKnownStatusBits)
        return fail(what + ": status " + std::to_string(s.driver.status) + " has unknown bits");
    if ((s.driver.status & kStatusDriverOk) && !(s.driver.status & kStatusFeaturesOk))
        return fail(what + ": status has DRIVER_OK without FEATURES_OK");
    const uint64_t offered = device_->device_features();
    if ((s.driver.status & kStatusFeaturesOk) && !acceptable_features(s.driver.driver_features, offered))
        return fail(what + ": driver features " + std::to_string(s.driver.driver_features) +
                    " are not a VERSION_1 subset of what this device offers (" + std::to_string(offered) +
                    "); give the same device options as the snapshotted VM");
    if (s.queues.size() != queues_.size())
        return fail(what + ": " + std::to_string(s.queues.size()) + " queues saved, the device has " +
                    std::to_string(queues_.size()));
    for (size_t i = 0; i < s.queues.size(); ++i) {
        if (s.queues[i].max_size != queues_[i].max_size)
            return fail(what + ": queue " + std::to_string(i) + " saved with maximum size " +
                        std::to_string(s.queues[i].max_size) + ", the device has " +
                        std::to_string(queues_[i].max_size));
        if (!s.queues[i].config.ready) continue;
        if (auto ok = Queue::validate(memory_, s.queues[i].config, queues_[i].max_size); !ok)
            return fail(what + ": queue " + std::to_string(i) + ": " + ok.error().message);
    }
    return {};
}

void TransportCore::restore(const CommonState& s) {
    regs_ = s.driver;
    for (size_t i = 0; i < queues_.size(); ++i) queues_[i].config = s.queues[i].config;
    // A device that had failed (DEVICE_NEEDS_RESET) stays inactive until the driver resets it.
    if ((s.driver.status & kStatusDriverOk) && !(s.driver.status & kStatusDeviceNeedsReset)) post_activate(true);
}

}  // namespace kite::virtio
