#include "vhost/vhost_user_device.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/asio_loop.h"

namespace kite::vhost {

namespace {

constexpr uint64_t kShmAlign = 2ull << 20;
constexpr uint32_t kIdBlock = 2;
constexpr uint32_t kIdFs = 26;
constexpr uint8_t kStatusDriverOk = 4;

// Features a virtio-mmio driver must not see even if the back-end offers them: the vhost-user protocol bit,
// VHOST_F_LOG_ALL (26, migration logging), ACCESS_PLATFORM (33, no IOMMU here), RING_PACKED (34, rings are
// passed as split rings), NOTIFICATION_DATA (38, the kick eventfd carries no data).
constexpr uint64_t kHiddenFeatures = kFeatureProtocolFeatures | (1ull << 26) | (1ull << 33) | (1ull << 34) | (1ull << 38);

uint64_t align_up(uint64_t value, uint64_t align) { return (value + align - 1) / align * align; }

}  // namespace

Result<std::unique_ptr<VhostUserDevice>> VhostUserDevice::connect(VhostUserDeviceConfig config,
                                                                 std::vector<VhostMemoryRegion> memory,
                                                                 asio::io_context& io) {
    std::unique_ptr<VhostUserDevice> device(new VhostUserDevice(std::move(config), std::move(memory)));
    device->io_ = &io;
    if (auto ok = device->setup(); !ok)
        return fail(fmt::format("vhost-user device at '{}': {}", device->config_.socket_path, ok.error().message));
    return device;
}

Result<void> VhostUserDevice::setup() {
    FrontendOptions options{config_.timeout, config_.trace};
    auto frontend = Frontend::connect(config_.socket_path, config_.connect_timeout, options);
    if (!frontend) return std::unexpected(frontend.error());
    frontend_ = std::move(*frontend);
    if (auto ok = handshake(true); !ok) return ok;
    watch_socket();
    return {};
}

Result<void> VhostUserDevice::handshake(bool first) {
    auto features = frontend_->get_features();
    if (!features) return std::unexpected(features.error());
    if (first) {
        backend_features_ = *features;
    } else {
        // The driver already acked features of the first back-end; the new one must offer all of them.
        uint64_t needed = (active_ ? active_->driver_features : 0) | (backend_features_ & kFeatureProtocolFeatures);
        if ((needed & ~*features) != 0)
            return fail(fmt::format("the back-end now offers features {:#x}, missing {:#x} that are in use", *features,
                                    needed & ~*features));
    }
    if (backend_features_ & kFeatureProtocolFeatures) {
        auto agreed = frontend_->negotiate_protocol_features();
        if (!agreed) return std::unexpected(agreed.error());
    }
    if (auto ok = frontend_->set_owner(); !ok) return ok;
    if (frontend_->has(protocol_feature::kMq)) {
        auto queues = frontend_->get_queue_num();
        if (!queues) return std::unexpected(queues.error());
        if (*queues < config_.num_queues)
            return fail(fmt::format("back-end supports {} queues, {} configured", *queues, config_.num_queues));
    }

    std::vector<uint64_t> sizes = config_.local_shm_sizes;
    if (frontend_->has(protocol_feature::kShmem)) {
        auto shm = frontend_->get_shmem_config();
        if (!shm) return std::unexpected(shm.error());
        sizes = std::move(*shm);
    }
    if (first) {
        uint64_t next = config_.shm_base.value();
        for (size_t id = 0; id < sizes.size() && id < kMaxShmRegions; ++id) {
            if (sizes[id] == 0) continue;
            if (auto ok = shm_->add_region(static_cast<uint8_t>(id), sizes[id]); !ok) return ok;
            next = align_up(next, kShmAlign);
            regions_.push_back(ShmRegion{static_cast<uint8_t>(id), GuestAddress(next), sizes[id]});
            next += sizes[id];
        }
    } else {
        // The guest sees the regions of the first back-end; they cannot change under it.
        for (const auto& region : regions_)
            if (region.id >= sizes.size() || sizes[region.id] != region.size)
                return fail(fmt::format("the back-end's shared memory region {} changed size", region.id));
    }

    if (frontend_->has(protocol_feature::kBackendReq)) {
        BackendChannel::Options channel;
        channel.shm = shm_.get();
        channel.on_config_change = [this] { config_changed(); };
        channel.on_closed = [this] { spdlog::warn("vhost-user '{}': back-end closed its channel", config_.socket_path); };
        auto opened = frontend_->open_backend_channel(std::move(channel));
        if (!opened) return std::unexpected(opened.error());
        (*opened)->start(*io_);
    }

    const bool served = config_.local_config.empty() && frontend_->has(protocol_feature::kConfig);
    backend_config_.store(served, std::memory_order_relaxed);
    if (!config_.local_config.empty()) {
        std::lock_guard lock(config_mutex_);
        config_cache_ = config_.local_config;
    } else if (served && config_.config_size > 0) {
        auto config = frontend_->get_config(0, config_.config_size);
        if (!config) return std::unexpected(config.error());
        std::lock_guard lock(config_mutex_);
        config_cache_ = std::move(*config);
    }
    return {};
}

uint64_t VhostUserDevice::shm_span() const {
    if (regions_.empty()) return 0;
    return regions_.back().base.value() + regions_.back().size - config_.shm_base.value();
}

uint64_t VhostUserDevice::device_features() const { return backend_features_ & ~kHiddenFeatures; }

std::vector<uint16_t> VhostUserDevice::queue_max_sizes() const {
    return std::vector<uint16_t>(config_.num_queues, config_.queue_size);
}

void VhostUserDevice::read_config(uint64_t offset, std::span<uint8_t> data) {
    // guest-controlled: offset and size; bytes outside the cached config read as zero.
    std::fill(data.begin(), data.end(), 0);
    std::lock_guard lock(config_mutex_);
    if (offset >= config_cache_.size()) return;
    size_t n = std::min<size_t>(data.size(), config_cache_.size() - offset);
    std::memcpy(data.data(), config_cache_.data() + offset, n);
}

void VhostUserDevice::write_config(uint64_t offset, std::span<const uint8_t> data) {
    // guest-controlled: offset and size, checked against the config space before anything is sent.
    // Runs on a vCPU thread: the cache changes here, at once, so the driver reads back what it wrote, and
    // SET_CONFIG goes out from the VMM thread, which owns the connection (a reconnect replaces it).
    // A space built here (virtio-fs) or one the back-end does not serve (no CONFIG) takes no writes.
    if (!backend_config_.load(std::memory_order_relaxed)) return;
    if (offset > kMaxConfigSize || data.size() > kMaxConfigSize - offset) return;
    {
        std::lock_guard lock(config_mutex_);
        if (offset + data.size() > config_cache_.size()) config_cache_.resize(offset + data.size());
        std::memcpy(config_cache_.data() + offset, data.data(), data.size());
    }
    std::weak_ptr<bool> alive = alive_;
    asio::post(*io_, [this, alive, offset, bytes = std::vector<uint8_t>(data.begin(), data.end())] {
        auto a = alive.lock();
        if (!a || !*a || !online() || !backend_config_.load(std::memory_order_relaxed)) return;
        if (auto ok = frontend_->set_config(static_cast<uint32_t>(offset), bytes); !ok) {
            spdlog::warn("vhost-user '{}': SET_CONFIG: {}", config_.socket_path, ok.error().message);
            check_connection(ok.error());
        }
    });
}

void VhostUserDevice::config_changed() {
    // Called while the back-end may wait for the reply to its CONFIG_CHANGE_MSG: asking it for the config
    // now would deadlock (until the timeout). Fetch it from a handler of its own, after that reply.
    std::weak_ptr<bool> alive = alive_;
    asio::post(*io_, [this, alive] {
        if (auto a = alive.lock(); a && *a) refresh_config();
    });
}

void VhostUserDevice::refresh_config() {
    if (online() && backend_config_.load(std::memory_order_relaxed) && config_.config_size > 0) {
        auto config = frontend_->get_config(0, config_.config_size);
        if (config) {
            std::lock_guard lock(config_mutex_);
            config_cache_ = std::move(*config);
        } else {
            check_connection(config.error());
        }
    }
    if (interrupt_ != nullptr) interrupt_->signal_config_change();
}

Result<void> VhostUserDevice::set_up_memory_table() {
    std::vector<MemoryRegionFd> regions;
    for (const auto& r : memory_)
        regions.push_back(MemoryRegionFd{{r.guest_addr.value(), r.size, reinterpret_cast<uint64_t>(r.host), r.fd_offset}, r.fd});
    return frontend_->set_mem_table(regions);
}

Result<void> VhostUserDevice::set_up_inflight() {
    if (!frontend_->has(protocol_feature::kInflightShmfd)) return {};
    if (!inflight_) {
        auto buffer = frontend_->get_inflight_fd(config_.num_queues, config_.queue_size);
        if (!buffer) return std::unexpected(buffer.error());
        // A size of 0 is how a back-end says it keeps no inflight state.
        if (buffer->description.mmap_size == 0) return {};
        inflight_ = std::move(*buffer);
    }
    return frontend_->set_inflight_fd(inflight_->description, inflight_->fd.get());
}

Result<void> VhostUserDevice::start_device(bool fresh) {
    const Active& a = *active_;
    uint64_t features = a.driver_features | (backend_features_ & kFeatureProtocolFeatures);
    if (auto ok = frontend_->set_features(features); !ok) return ok;
    if (auto ok = set_up_memory_table(); !ok) return ok;
    // Before the rings: a back-end resubmits inflight requests when a ring's kick fd arrives.
    if (auto ok = set_up_inflight(); !ok) return ok;
    started_queues_.clear();
    for (uint32_t i = 0; i < a.queues.size(); ++i) {
        const QueueConfig& q = a.queues[i];
        if (!q.ready) continue;
        // The transport validated the rings against guest RAM; the back-end wants our user addresses.
        auto desc = a.memory->span(q.desc, 16ull * q.size);
        auto avail = a.memory->span(q.avail, 6 + 2ull * q.size);
        auto used = a.memory->span(q.used, 6 + 8ull * q.size);
        if (!desc || !avail || !used || i >= a.kick_fds.size()) return fail(fmt::format("queue {} is not in guest RAM", i));
        // A fresh ring starts at 0. After a reconnect the next request to process is the first one the dead
        // back-end had not completed: the used index it last published (with INFLIGHT_SHMFD the back-end
        // also resubmits from the inflight buffer whatever was in flight beyond that).
        uint16_t base = 0;
        if (!fresh) std::memcpy(&base, used->data() + 2, sizeof base);  // used->idx, little-endian
        if (!fresh && !inflight_) {
            // Without inflight state nobody knows which of the requests after used->idx the dead back-end
            // had already completed (a back-end may complete out of order): say so, it may show as a hang.
            uint16_t avail_idx = 0;
            std::memcpy(&avail_idx, avail->data() + 2, sizeof avail_idx);
            if (uint16_t pending = static_cast<uint16_t>(avail_idx - base); pending != 0)
                spdlog::warn("vhost-user '{}': ring {} restarts at used index {} with {} request(s) the guest is "
                             "still waiting for; the back-end keeps no inflight state (no INFLIGHT_SHMFD), so one it "
                             "completed out of order before it died is done again and one it skipped is lost",
                             config_.socket_path, i, base, pending);
        }
        VringAddr addr{i, 0, reinterpret_cast<uint64_t>(desc->data()), reinterpret_cast<uint64_t>(used->data()),
                       reinterpret_cast<uint64_t>(avail->data()), 0};
        if (auto ok = frontend_->set_vring_num(i, q.size); !ok) return ok;
        if (auto ok = frontend_->set_vring_addr(addr); !ok) return ok;
        if (auto ok = frontend_->set_vring_base(i, base); !ok) return ok;
        if (auto ok = frontend_->set_vring_call(i, a.call_fds.empty() ? a.irq_fd : a.call_fds[i]); !ok) return ok;
        if (auto ok = frontend_->set_vring_kick(i, a.kick_fds[i]); !ok) return ok;
        if (backend_features_ & kFeatureProtocolFeatures)
            if (auto ok = frontend_->set_vring_enable(i, true); !ok) return ok;
        started_queues_.push_back(i);
    }
    if (frontend_->has(protocol_feature::kStatus))
        // ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK: where the driver is when activate() runs.
        if (auto ok = frontend_->set_status(0x0b | kStatusDriverOk); !ok) return ok;
    return {};
}

Result<void> VhostUserDevice::activate(ActivateContext ctx) {
    active_ = Active{&ctx.memory, ctx.queues, ctx.kick_fds, ctx.irq_fd, ctx.driver_features, ctx.call_fds};
    interrupt_ = &ctx.interrupt;
    if (!online()) {
        // The back-end is away: the rings start when it is back (or when a new attempt finds it).
        if (!reconnecting_ && !lost_) schedule_reconnect();
        return {};
    }
    if (auto ok = start_device(true); !ok) {
        // A back-end that died half way is replayed when it is back; a refusal is the driver's problem.
        if (!frontend_->connected()) {
            check_connection(ok.error());
            return {};
        }
        return ok;
    }
    return {};
}

void VhostUserDevice::reset() {
    interrupt_ = nullptr;
    active_.reset();
    // Inflight requests of a reset device must not be resubmitted to the next driver.
    inflight_.reset();
    shm_->clear();
    if (!online()) {
        started_queues_.clear();
        return;
    }
    // GET_VRING_BASE stops each ring; then the back-end forgets the device state.
    for (uint32_t i : started_queues_)
        if (auto base = frontend_->get_vring_base(i); !base) spdlog::warn("vhost-user '{}': {}", config_.socket_path, base.error().message);
    started_queues_.clear();
    Result<void> ok;
    if (frontend_->has(protocol_feature::kResetDevice)) ok = frontend_->reset_device();
    else if (frontend_->has(protocol_feature::kStatus)) ok = frontend_->set_status(0);
    if (!ok) check_connection(ok.error());
    else if (!frontend_->connected()) check_connection(Error{"lost during reset", ECONNRESET, ErrorKind::System});
    shm_->clear();
}

VhostUserDeviceConfig vhost_user_blk_config(std::string socket_path, uint16_t num_queues) {
    VhostUserDeviceConfig config;
    config.socket_path = std::move(socket_path);
    config.device_id = kIdBlock;
    config.num_queues = num_queues;
    // struct virtio_blk_config up to write_zeroes_may_unmap and its padding, as QEMU's front-end asks:
    // libvhost-user back-ends (qemu-storage-daemon) refuse a GET_CONFIG larger than their struct.
    config.config_size = 60;
    return config;
}

Result<VhostUserDeviceConfig> vhost_user_fs_config(std::string socket_path, const std::string& tag, uint64_t dax_window) {
    if (tag.empty() || tag.size() > 36) return fail(fmt::format("virtio-fs tag '{}' must be 1 to 36 bytes", tag));
    if (dax_window % 4096 != 0) return fail(fmt::format("virtio-fs DAX window {:#x} is not a page multiple", dax_window));
    VhostUserDeviceConfig config;
    config.socket_path = std::move(socket_path);
    config.device_id = kIdFs;
    config.num_queues = 2;  // hiprio + one request queue
    config.queue_size = 1024;
    // struct virtio_fs_config { u8 tag[36]; le32 num_request_queues; }
    config.local_config.assign(40, 0);
    std::memcpy(config.local_config.data(), tag.data(), tag.size());
    config.local_config[36] = 1;
    if (dax_window != 0) config.local_shm_sizes = {dax_window};
    return config;
}

VhostUserDeviceConfig vhost_user_generic_config(std::string socket_path, uint32_t device_id, uint16_t num_queues) {
    VhostUserDeviceConfig config;
    config.socket_path = std::move(socket_path);
    config.device_id = device_id;
    config.num_queues = num_queues;
    return config;
}

}  // namespace kite::vhost
