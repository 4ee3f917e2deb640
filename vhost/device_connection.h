// The connection of a vhost-user device to its back-end: the Frontend (main socket and backend channel),
// the handshake, starting and stopping the rings, noticing that the back-end is gone, and the replay to a
// new back-end after it was lost. It owns what the back-end may map into (the shm windows) and what must
// survive a lost back-end (the inflight buffer); when to try again is ReconnectPolicy's business.
//
// The handshake: features, protocol features, owner, queue count, shm config, backend channel, config
// space. The first one creates the shm regions; later ones must find what the guest already sees
// (features the driver acked, shm region sizes).
//
// The replay (reopen): for an active device the memory table, the inflight buffer (SET_INFLIGHT_FD with the
// same memfd, so the back-end resubmits what was in flight), each ring's num, addresses, base (the used
// index read from guest memory, since GET_VRING_BASE cannot reach a dead peer), call and kick fds, enable,
// and DRIVER_OK.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "base/log_limit.h"
#include "devices/virtio/virtio_device.h"
#include "vhost/config_space.h"
#include "vhost/device_config.h"
#include "vhost/frontend.h"
#include "vhost/shm_regions.h"
#include "vhost/trace.h"

namespace kite {
class FdWatcher;
}

namespace kite::vhost {

// What activate() was given, kept so a reconnect can hand it to the next back-end. The fds are the
// transport's, valid until reset().
struct ActiveRings {
    GuestMemory* memory = nullptr;
    std::vector<QueueConfig> queues;
    std::vector<BorrowedFd> kick_fds;
    BorrowedFd irq_fd;
    uint64_t driver_features = 0;
    std::vector<BorrowedFd> call_fds;  // per queue (virtio-pci), else empty and irq_fd serves all
};

class DeviceConnection {
public:
    struct Events {
        std::function<void()> config_changed;  // after CONFIG_CHANGE_MSG, once the space was fetched again
        std::function<void()> lost;            // the back-end is gone and its connection torn down
    };
    // A failed reopen(): `refused` when a back-end answered but cannot take over the device.
    struct ReopenError {
        bool refused = false;
        std::string why;
    };

    // `config` and `config_space` are borrowed and must outlive the connection.
    DeviceConnection(const VhostUserDeviceConfig& config, std::vector<VhostMemoryRegion> memory,
                     ConfigSpace& config_space, asio::io_context& io, Events events);
    ~DeviceConnection();
    DeviceConnection(const DeviceConnection&) = delete;
    DeviceConnection& operator=(const DeviceConnection&) = delete;

    // The first connection: waits up to connect_timeout for the socket, then the first handshake.
    Result<void> open();
    // One reconnect attempt without waiting: handshake, and the replay of `active` (nullptr: not active).
    std::expected<void, ReopenError> reopen(const ActiveRings* active);

    // Memory table, inflight buffer, rings (base 0 when `fresh`, else the used index in guest memory), fds,
    // enable, DRIVER_OK.
    Result<void> start(const ActiveRings& active, bool fresh);
    // Driver reset: stops the rings, forgets the inflight buffer and every mapping.
    void reset();
    // SET_CONFIG of a driver write of [offset, offset + size) the config space already holds, sent from a
    // handler of its own on the VMM thread. Any thread. Coalesced: while one is pending, later writes only
    // widen its range, and it sends what the space holds then (the latest state wins), so a guest writing
    // in a loop costs one round trip per loop turn at most, never a growing queue.
    void post_set_config(uint64_t offset, uint64_t size);
    // A request failed: if the connection is gone, the back-end is lost.
    void check(const Error& error);

    // False from the moment the back-end is lost until a reconnect has replayed everything.
    bool online() const { return frontend_ != nullptr && !lost_; }
    // The back-end is lost and its teardown is still to come (Events::lost follows).
    bool tearing_down() const { return lost_; }
    // The main socket failed during the last request.
    bool broken() const { return frontend_ != nullptr && !frontend_->connected(); }
    // Only while online().
    Frontend& frontend() { return *frontend_; }
    uint64_t backend_features() const { return backend_features_; }
    const std::vector<ShmRegion>& regions() const { return regions_; }
    ShmWindowTable& shm_table() { return *shm_; }
    // The rings the back-end serves now.
    const std::vector<uint32_t>& started_queues() const { return started_queues_; }
    const Tracer& tracer() const { return tracer_; }
    // Handlers posted to the VMM loop that have not run yet (bounded: see post_set_config, refresh).
    size_t pending_posts() const { return pending_posts_.load(std::memory_order_relaxed); }

private:
    Result<void> handshake(bool first, uint64_t features_in_use);
    Result<void> create_shm_regions(const std::vector<uint64_t>& sizes);
    Result<void> open_backend_channel();
    Result<void> load_config();
    Result<void> set_up_memory_table();
    Result<void> set_up_inflight();
    // CONFIG_CHANGE_MSG: a refresh from a handler of its own; a flood of them while it is pending is one.
    void post_refresh_config();
    void refresh_config();
    void send_pending_config();
    void watch_socket();
    void on_socket_readable();
    // Marks the back-end lost and tears the connection down from a fresh handler (the caller may be the
    // backend channel itself).
    void lose(std::string why);
    void drop();
    void close_frontend();
    // Runs `fn` from a handler of its own on the VMM loop, unless the connection is gone by then.
    void post(std::function<void()> fn);

    const VhostUserDeviceConfig& config_;
    std::vector<VhostMemoryRegion> memory_;
    ConfigSpace& config_space_;
    asio::io_context& io_;
    Events events_;
    Tracer tracer_;
    // Declared before frontend_: the backend channel (inside frontend_) borrows the table, so the table
    // must be destroyed after it.
    std::unique_ptr<ShmWindowTable> shm_ = std::make_unique<ShmWindowTable>();
    std::unique_ptr<Frontend> frontend_;
    uint64_t backend_features_ = 0;
    std::vector<ShmRegion> regions_;
    std::vector<uint32_t> started_queues_;
    std::optional<InflightBuffer> inflight_;  // kept across reconnects, dropped by reset()
    std::unique_ptr<FdWatcher> socket_watcher_;
    bool lost_ = false;  // the back-end is gone; frontend_ may still await its teardown
    bool refresh_posted_ = false;  // VMM thread only
    // The range of driver config writes not yet sent; written on vCPU threads.
    struct PendingConfigWrite {
        bool posted = false;
        uint64_t begin = 0, end = 0;
    };
    std::mutex config_write_mutex_;
    PendingConfigWrite config_write_;
    std::atomic<size_t> pending_posts_{0};
    // Every message here follows what a back-end (or, for SET_CONFIG, the guest) does, as often as it likes.
    LogLimit log_;
    LogLimit set_config_log_;
    // Handlers posted to the loop hold a weak copy; the destructor clears it.
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace kite::vhost
