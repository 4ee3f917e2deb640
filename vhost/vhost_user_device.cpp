#include "vhost/vhost_user_device.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/event_fd.h"

namespace kite::vhost {

namespace {

// Features a virtio-mmio driver must not see even if the back-end offers them: the vhost-user protocol bit,
// VHOST_F_LOG_ALL (26, migration logging), ACCESS_PLATFORM (33, no IOMMU here), RING_PACKED (34, rings are
// passed as split rings), NOTIFICATION_DATA (38, the kick eventfd carries no data).
constexpr uint64_t kHiddenFeatures = kFeatureProtocolFeatures | (1ull << 26) | (1ull << 33) | (1ull << 34) | (1ull << 38);

}  // namespace

VhostUserDevice::VhostUserDevice(VhostUserDeviceConfig config, std::vector<VhostMemoryRegion> memory,
                                 asio::io_context& io)
    : config_(std::move(config)) {
    DeviceConnection::Events events;
    events.config_changed = [this] {
        if (interrupt_ != nullptr) interrupt_->signal_config_change();
    };
    events.lost = [this] { reconnect_->schedule(); };
    connection_ = std::make_unique<DeviceConnection>(config_, std::move(memory), config_space_, io, std::move(events));
    reconnect_ = std::make_unique<ReconnectPolicy>(
        io, config_.reconnect_interval, config_.reconnect_timeout, [this] { return try_reconnect(); },
        [this](const std::string& why) { give_up(why); });
}

VhostUserDevice::~VhostUserDevice() = default;

Result<std::unique_ptr<VhostUserDevice>> VhostUserDevice::connect(VhostUserDeviceConfig config,
                                                                 std::vector<VhostMemoryRegion> memory,
                                                                 asio::io_context& io) {
    std::unique_ptr<VhostUserDevice> device(new VhostUserDevice(std::move(config), std::move(memory), io));
    if (auto ok = device->connection_->open(); !ok)
        return fail(fmt::format("vhost-user device at '{}': {}", device->config_.socket_path, ok.error().message));
    return device;
}

uint64_t VhostUserDevice::shm_span() const {
    const auto& regions = connection_->regions();
    if (regions.empty()) return 0;
    return regions.back().base.value() + regions.back().size - config_.shm_base.value();
}

uint64_t VhostUserDevice::device_features() const { return connection_->backend_features() & ~kHiddenFeatures; }

std::vector<uint16_t> VhostUserDevice::queue_max_sizes() const {
    return std::vector<uint16_t>(config_.num_queues, config_.queue_size);
}

void VhostUserDevice::read_config(uint64_t offset, std::span<uint8_t> data) {
    // guest-controlled: offset and size, checked by the config space.
    config_space_.read(offset, data);
}

void VhostUserDevice::write_config(uint64_t offset, std::span<const uint8_t> data) {
    // guest-controlled: offset and size, checked against the config space before anything is sent.
    // Runs on a vCPU thread: the cache changes here, at once, and SET_CONFIG goes out from the VMM thread.
    if (!config_space_.write(offset, data)) return;
    connection_->post_set_config(offset, data.size());
}

Result<void> VhostUserDevice::activate(ActivateContext ctx) {
    active_ = ActiveRings{&ctx.memory, ctx.queues, ctx.kick_fds, ctx.irq_fd, ctx.driver_features, ctx.call_fds};
    interrupt_ = &ctx.interrupt;
    if (!connection_->online()) {
        // The back-end is away: the rings start when it is back (or when a new attempt finds it).
        if (!reconnect_->running() && !connection_->tearing_down()) reconnect_->schedule();
        return {};
    }
    if (auto ok = connection_->start(*active_, true); !ok) {
        // A back-end that died half way is replayed when it is back; a refusal is the driver's problem.
        if (connection_->broken()) {
            connection_->check(ok.error());
            return {};
        }
        return ok;
    }
    return {};
}

void VhostUserDevice::reset() {
    interrupt_ = nullptr;
    active_.reset();
    connection_->reset();
}

ReconnectPolicy::Attempt VhostUserDevice::try_reconnect() {
    using Outcome = ReconnectPolicy::Outcome;
    if (connection_->online()) return {Outcome::kDone, {}};
    const std::vector<uint8_t> old_config = config_space_.bytes();
    if (auto ok = connection_->reopen(active_ ? &*active_ : nullptr); !ok)
        return {ok.error().refused ? Outcome::kGiveUp : Outcome::kRetry, ok.error().why};
    ++reconnects_;
    const auto& started = connection_->started_queues();
    log_.warn("vhost-user '{}': back-end reconnected, {} ring(s) resumed", config_.socket_path, started.size());
    connection_->tracer().note("back-end reconnected; state replayed");
    // The dead back-end may have consumed a kick without serving it, or completed requests without an
    // interrupt: kick every ring and let the driver look at its used rings once.
    for (uint32_t i : started) {
        if (i < active_->kick_fds.size()) signal_eventfd(active_->kick_fds[i]);
        if (interrupt_ != nullptr) interrupt_->signal_used_queue(static_cast<uint16_t>(i));
    }
    // A back-end that came back with another config space (a resized disk, say): the driver must look, and
    // the transport copies the new space into its register page.
    if (config_space_.bytes() != old_config && interrupt_ != nullptr) interrupt_->signal_config_change();
    return {Outcome::kDone, {}};
}

void VhostUserDevice::give_up(const std::string& why) {
    log_.error("vhost-user '{}': no usable back-end within {} ms ({}); the device needs a reset", config_.socket_path,
               config_.reconnect_timeout.count(), why);
    connection_->tracer().note(fmt::format("reconnect given up: {}", why));
    // The driver learns through DEVICE_NEEDS_RESET; its next activate() starts a new round of attempts.
    if (interrupt_ != nullptr) interrupt_->needs_reset();
}

}  // namespace kite::vhost
