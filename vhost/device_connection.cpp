#include "vhost/device_connection.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <span>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/asio_loop.h"
#include "base/fd_watcher.h"

namespace kite::vhost {

namespace {

constexpr uint64_t kShmAlign = 2ull << 20;
constexpr uint8_t kStatusDriverOk = 4;

uint64_t align_up(uint64_t value, uint64_t align) { return (value + align - 1) / align * align; }

}  // namespace

DeviceConnection::DeviceConnection(const VhostUserDeviceConfig& config, std::vector<VhostMemoryRegion> memory,
                                   ConfigSpace& config_space, asio::io_context& io, Events events)
    : config_(config), memory_(std::move(memory)), config_space_(config_space), io_(io), events_(std::move(events)),
      tracer_(config.trace) {}

DeviceConnection::~DeviceConnection() {
    *alive_ = false;
    socket_watcher_.reset();
}

Result<void> DeviceConnection::open() {
    FrontendOptions options{config_.timeout, config_.trace};
    auto frontend = Frontend::connect(config_.socket_path, config_.connect_timeout, options, config_.peer);
    if (!frontend) return std::unexpected(frontend.error());
    frontend_ = std::move(*frontend);
    if (auto ok = handshake(true, 0); !ok) return ok;
    watch_socket();
    return {};
}

std::expected<void, DeviceConnection::ReopenError> DeviceConnection::reopen(const ActiveRings* active) {
    // Millis(0): one attempt that never blocks (the policy calls again); a path another user took over
    // after the back-end exited fails the peer check like any other attempt.
    auto conn = Connection::connect(config_.socket_path, Millis(0), config_.peer);
    if (!conn) return std::unexpected(ReopenError{false, conn.error().message});
    frontend_ = std::make_unique<Frontend>(std::move(*conn), FrontendOptions{config_.timeout, config_.trace});
    auto ok = handshake(false, active ? active->driver_features : 0);
    if (ok && active) ok = start(*active, false);
    if (ok) {
        watch_socket();
        return {};
    }
    // A back-end that answers but refuses (features or shm regions changed) will not get better.
    ReopenError error{frontend_->connected(), ok.error().message};
    close_frontend();
    return std::unexpected(std::move(error));
}

Result<void> DeviceConnection::handshake(bool first, uint64_t features_in_use) {
    auto features = frontend_->get_features();
    if (!features) return std::unexpected(features.error());
    if (first) {
        backend_features_ = *features;
    } else {
        // The driver already acked features of the first back-end; the new one must offer all of them.
        uint64_t needed = features_in_use | (backend_features_ & kFeatureProtocolFeatures);
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
        if (auto ok = create_shm_regions(sizes); !ok) return ok;
    } else {
        // The guest sees the regions of the first back-end; they cannot change under it.
        for (const auto& region : regions_)
            if (region.id >= sizes.size() || sizes[region.id] != region.size)
                return fail(fmt::format("the back-end's shared memory region {} changed size", region.id));
    }
    if (auto ok = open_backend_channel(); !ok) return ok;
    return load_config();
}

Result<void> DeviceConnection::create_shm_regions(const std::vector<uint64_t>& sizes) {
    uint64_t next = config_.shm_base.value();
    for (size_t id = 0; id < sizes.size() && id < kMaxShmRegions; ++id) {
        if (sizes[id] == 0) continue;
        if (auto ok = shm_->add_region(static_cast<uint8_t>(id), sizes[id]); !ok) return ok;
        next = align_up(next, kShmAlign);
        regions_.push_back(ShmRegion{static_cast<uint8_t>(id), GuestAddress(next), sizes[id]});
        next += sizes[id];
    }
    return {};
}

Result<void> DeviceConnection::open_backend_channel() {
    if (!frontend_->has(protocol_feature::kBackendReq)) return {};
    BackendChannel::Options channel;
    channel.shm = shm_.get();
    // Called while the back-end may wait for the reply to its CONFIG_CHANGE_MSG: asking it for the config
    // now would deadlock (until the timeout). Fetch it from a handler of its own, after that reply.
    channel.on_config_change = [this] { post_refresh_config(); };
    channel.on_closed = [this] { log_.warn("vhost-user '{}': back-end closed its channel", config_.socket_path); };
    auto opened = frontend_->open_backend_channel(std::move(channel));
    if (!opened) return std::unexpected(opened.error());
    (*opened)->start(io_);
    return {};
}

Result<void> DeviceConnection::load_config() {
    const bool served = config_.local_config.empty() && frontend_->has(protocol_feature::kConfig);
    config_space_.set_served(served);
    if (!config_.local_config.empty()) {
        config_space_.replace(config_.local_config);
    } else if (served && config_.config_size > 0) {
        auto config = frontend_->get_config(0, config_.config_size);
        if (!config) return std::unexpected(config.error());
        config_space_.replace(std::move(*config));
    }
    return {};
}

void DeviceConnection::refresh_config() {
    if (online() && config_space_.served() && config_.config_size > 0) {
        auto config = frontend_->get_config(0, config_.config_size);
        if (config) config_space_.replace(std::move(*config));
        else check(config.error());
    }
    if (events_.config_changed) events_.config_changed();
}

void DeviceConnection::post_refresh_config() {
    if (refresh_posted_) return;
    refresh_posted_ = true;
    post([this] {
        refresh_posted_ = false;
        refresh_config();
    });
}

void DeviceConnection::post_set_config(uint64_t offset, uint64_t size) {
    // guest-controlled: offset and size, already checked by the config space (at most kMaxConfigSize).
    std::lock_guard lock(config_write_mutex_);
    PendingConfigWrite& w = config_write_;
    w.begin = w.posted ? std::min(w.begin, offset) : offset;
    w.end = w.posted ? std::max(w.end, offset + size) : offset + size;
    if (w.posted) return;
    w.posted = true;
    // The VMM thread owns the connection (a reconnect replaces it).
    post([this] { send_pending_config(); });
}

void DeviceConnection::send_pending_config() {
    PendingConfigWrite w;
    {
        std::lock_guard lock(config_write_mutex_);
        w = std::exchange(config_write_, PendingConfigWrite{});
    }
    if (!online() || !config_space_.served()) return;
    std::vector<uint8_t> space = config_space_.bytes();
    if (w.begin >= space.size()) return;
    std::span<const uint8_t> bytes(space.data() + w.begin, std::min<uint64_t>(w.end, space.size()) - w.begin);
    if (auto ok = frontend_->set_config(static_cast<uint32_t>(w.begin), bytes); !ok) {
        // Rate-limited by the coalescing above: one failure per pending write at most.
        set_config_log_.warn("vhost-user '{}': SET_CONFIG: {}", config_.socket_path, ok.error().message);
        check(ok.error());
    }
}

Result<void> DeviceConnection::set_up_memory_table() {
    std::vector<MemoryRegionFd> regions;
    for (const auto& r : memory_)
        regions.push_back(
            MemoryRegionFd{{r.guest_addr.value(), r.size, reinterpret_cast<uint64_t>(r.host), r.fd_offset}, r.fd.get()});
    return frontend_->set_mem_table(regions);
}

Result<void> DeviceConnection::set_up_inflight() {
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

Result<void> DeviceConnection::start(const ActiveRings& a, bool fresh) {
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
                log_.warn("vhost-user '{}': ring {} restarts at used index {} with {} request(s) the guest is "
                          "still waiting for; the back-end keeps no inflight state (no INFLIGHT_SHMFD), so one it "
                          "completed out of order before it died is done again and one it skipped is lost",
                          config_.socket_path, i, base, pending);
        }
        VringAddr addr{i, 0, reinterpret_cast<uint64_t>(desc->data()), reinterpret_cast<uint64_t>(used->data()),
                       reinterpret_cast<uint64_t>(avail->data()), 0};
        BorrowedFd call = a.call_fds.empty() ? a.irq_fd : a.call_fds[i];
        if (auto ok = frontend_->set_vring_num(i, q.size); !ok) return ok;
        if (auto ok = frontend_->set_vring_addr(addr); !ok) return ok;
        if (auto ok = frontend_->set_vring_base(i, base); !ok) return ok;
        if (auto ok = frontend_->set_vring_call(i, call.get()); !ok) return ok;
        if (auto ok = frontend_->set_vring_kick(i, a.kick_fds[i].get()); !ok) return ok;
        if (backend_features_ & kFeatureProtocolFeatures)
            if (auto ok = frontend_->set_vring_enable(i, true); !ok) return ok;
        started_queues_.push_back(i);
    }
    if (frontend_->has(protocol_feature::kStatus))
        // ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK: where the driver is when activate() runs.
        if (auto ok = frontend_->set_status(0x0b | kStatusDriverOk); !ok) return ok;
    return {};
}

void DeviceConnection::reset() {
    // Inflight requests of a reset device must not be resubmitted to the next driver.
    inflight_.reset();
    shm_->clear();
    if (!online()) {
        started_queues_.clear();
        return;
    }
    // GET_VRING_BASE stops each ring; then the back-end forgets the device state.
    for (uint32_t i : started_queues_)
        if (auto base = frontend_->get_vring_base(i); !base) log_.warn("vhost-user '{}': {}", config_.socket_path, base.error().message);
    started_queues_.clear();
    Result<void> ok;
    if (frontend_->has(protocol_feature::kResetDevice)) ok = frontend_->reset_device();
    else if (frontend_->has(protocol_feature::kStatus)) ok = frontend_->set_status(0);
    if (!ok) check(ok.error());
    else if (!frontend_->connected()) check(Error{"lost during reset", ECONNRESET, ErrorKind::System});
    shm_->clear();
}

void DeviceConnection::watch_socket() {
    std::weak_ptr<bool> alive = alive_;
    auto watcher = FdWatcher::create(io_, frontend_->fd(), FdWatcher::Mode::kLevel, [this, alive] {
        if (auto a = alive.lock(); a && *a) on_socket_readable();
    });
    if (!watcher) {
        log_.warn("vhost-user '{}': cannot watch the socket ({}); a lost back-end shows at the next request",
                  config_.socket_path, watcher.error().message);
        return;
    }
    socket_watcher_ = std::move(*watcher);
}

void DeviceConnection::on_socket_readable() {
    // Between requests the back-end has nothing to say on the main socket: readable means it hung up, or
    // broke the protocol. A reply that a request already consumed leaves nothing to peek.
    if (!online()) return;
    char byte;
    ssize_t n = ::recv(frontend_->fd(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n > 0) {
        tracer_.violation("back-end sent a message on the main socket that answers no request");
        lose("unsolicited message on the main socket");
        return;
    }
    lose(n == 0 ? "the back-end closed the socket" : errno_error("socket").message);
}

void DeviceConnection::check(const Error& error) {
    if (broken()) lose(error.message);
}

void DeviceConnection::lose(std::string why) {
    if (lost_ || frontend_ == nullptr) return;
    lost_ = true;
    if (socket_watcher_) socket_watcher_->pause();
    log_.warn("vhost-user '{}': back-end lost ({}); reconnecting for up to {} ms", config_.socket_path, why,
              config_.reconnect_timeout.count());
    tracer_.note(fmt::format("back-end lost: {}", why));
    // The caller may be running inside the connection (the backend channel's handler): tear it down from a
    // handler of its own.
    post([this] { drop(); });
}

void DeviceConnection::drop() {
    socket_watcher_.reset();
    close_frontend();
    lost_ = false;
    if (events_.lost) events_.lost();
}

void DeviceConnection::close_frontend() {
    frontend_.reset();  // closes the main socket and the backend channel
    // Whatever the back-end mapped goes with it (the channel may not have noticed yet).
    shm_->clear();
    started_queues_.clear();
}

void DeviceConnection::post(std::function<void()> fn) {
    std::weak_ptr<bool> alive = alive_;
    pending_posts_.fetch_add(1, std::memory_order_relaxed);
    asio::post(io_, [this, alive, fn = std::move(fn)] {
        if (auto a = alive.lock(); a && *a) {
            pending_posts_.fetch_sub(1, std::memory_order_relaxed);
            fn();
        }
    });
}

}  // namespace kite::vhost
