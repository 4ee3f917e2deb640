// A virtio device whose queues a vhost-user back-end serves (VirtioDevice over Frontend). The transport
// keeps the registers; at DRIVER_OK this device hands the back-end the guest memory table, the rings, the
// transport's kick eventfds and its irq eventfd. VIRTIO shared memory regions come from GET_SHMEM_CONFIG
// (or, for virtio-fs DAX, from the configuration) and are ShmWindows the back-end maps into with
// SHMEM_MAP; the VMM makes them guest-visible at shm_regions()[i].base through window observers.
//
// Reconnect: when the back-end dies (its socket hangs up, or a request on it fails) the guest keeps running
// and its I/O on this device waits. Every mapping the dead back-end made is dropped. The device retries the
// socket until `reconnect_timeout` and then replays what the back-end had: features, protocol features,
// owner, backend channel, and for an active device the memory table, the inflight buffer
// (SET_INFLIGHT_FD with the same memfd, so the back-end resubmits what was in flight), each ring's num,
// addresses, base (the used index read from guest memory, since GET_VRING_BASE cannot reach a dead peer),
// call and kick fds, enable, and DRIVER_OK. No back-end within the timeout: DEVICE_NEEDS_RESET; a later
// driver activate() tries again. See vhost_user_reconnect.cpp.
//
// VhostUserGeneric: any device id, config space from the back-end (GET_CONFIG) when CONFIG is negotiated.
// VhostUserBlk: device id 2, config space from the back-end.
// VhostUserFs: device id 26, config space (tag, request queue count) built here, optional DAX window as
// shm region 0.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "devices/virtio/virtio_device.h"
#include "vhost/frontend.h"
#include "vhost/shm_regions.h"
#include "vhost/trace.h"

namespace kite {
class FdWatcher;
}

namespace kite::vhost {

// One guest RAM region as the VMM maps it: the back-end gets the same fd and offset.
struct VhostMemoryRegion {
    GuestAddress guest_addr;
    uint64_t size = 0;
    void* host = nullptr;     // the VMM's mapping of this region (what GuestMemory::span returns)
    int fd = -1;              // borrowed: the memfd behind the region
    uint64_t fd_offset = 0;   // where the region starts in fd
};

struct VhostUserDeviceConfig {
    std::string socket_path;
    uint32_t device_id = 0;
    uint16_t num_queues = 1;
    uint16_t queue_size = 256;
    Millis connect_timeout = Millis(5000);
    Millis timeout = Millis(5000);
    Millis reconnect_timeout = Millis(5000);  // after the back-end is lost; 0 = give up at once
    Millis reconnect_interval = Millis(50);   // between connection attempts
    TraceSink trace;                     // empty = no tracing
    std::vector<uint8_t> local_config;   // used instead of GET_CONFIG when non-empty (virtio-fs)
    uint32_t config_size = kMaxConfigSize;  // bytes GET_CONFIG asks for (a back-end may refuse more than its struct)
    std::vector<uint64_t> local_shm_sizes;  // shm regions when the back-end has no SHMEM (DAX window)
    GuestAddress shm_base;               // guest address of the first shm region; regions follow, 2 MiB aligned
};

class VhostUserDevice : public VirtioDevice {
public:
    // Connects, negotiates protocol features, SET_OWNER, reads shm config, opens the backend channel (served
    // on `io` from now on). `memory` is the guest RAM layout the back-end will map at activate().
    static Result<std::unique_ptr<VhostUserDevice>> connect(VhostUserDeviceConfig config,
                                                           std::vector<VhostMemoryRegion> memory,
                                                           asio::io_context& io);
    ~VhostUserDevice() override;

    uint32_t device_id() const override { return config_.device_id; }
    uint64_t device_features() const override;
    std::vector<uint16_t> queue_max_sizes() const override;
    void read_config(uint64_t offset, std::span<uint8_t> data) override;
    void write_config(uint64_t offset, std::span<const uint8_t> data) override;
    Result<void> activate(ActivateContext ctx) override;
    void reset() override;
    std::vector<ShmRegion> shm_regions() const override { return regions_; }
    bool interrupt_status_always_used() const override { return true; }

    // The host windows behind shm_regions(), for the VMM's memslot observers.
    ShmWindowTable& shm_table() { return *shm_; }
    // Only while online().
    Frontend& frontend() { return *frontend_; }
    // False from the moment the back-end is lost until a reconnect has replayed everything.
    bool online() const { return frontend_ != nullptr && !lost_; }
    // Completed reconnects since connect().
    uint64_t reconnects() const { return reconnects_; }
    // Total guest address space the shm regions take from shm_base.
    uint64_t shm_span() const;

protected:
    VhostUserDevice(VhostUserDeviceConfig config, std::vector<VhostMemoryRegion> memory);

private:
    // What activate() was given, kept so a reconnect can hand it to the next back-end.
    struct Active {
        GuestMemory* memory = nullptr;
        std::vector<QueueConfig> queues;
        std::vector<int> kick_fds;  // borrowed from the transport, valid until reset()
        int irq_fd = -1;
        uint64_t driver_features = 0;
        std::vector<int> call_fds;  // per queue (virtio-pci), else empty and irq_fd serves all
    };

    Result<void> setup();
    // Features, protocol features, owner, queue count, shm config, backend channel, config space. `first`:
    // the initial connection (creates the shm regions); afterwards the back-end must match what the guest
    // already sees (features the driver acked, shm region sizes).
    Result<void> handshake(bool first);
    Result<void> set_up_memory_table();
    // Memory table, inflight buffer, rings (base 0 when `fresh`, else the used index in guest memory),
    // fds, enable, DRIVER_OK.
    Result<void> start_device(bool fresh);
    Result<void> set_up_inflight();
    void config_changed();  // CONFIG_CHANGE_MSG: refresh_config() from a fresh handler
    std::vector<uint8_t> config_space() const {
        std::lock_guard lock(config_mutex_);
        return config_cache_;
    }
    void refresh_config();
    void watch_socket();
    void on_socket_readable();
    // A request on the main socket failed: if the connection is gone, start reconnecting.
    void check_connection(const Error& error);
    // Marks the back-end lost and tears the connection down from a fresh handler (the caller may be the
    // backend channel itself).
    void lose_connection(std::string why);
    void drop_connection();
    void schedule_reconnect();
    void try_reconnect();
    void give_up(const std::string& why);

    VhostUserDeviceConfig config_;
    std::vector<VhostMemoryRegion> memory_;
    // Declared before frontend_: the backend channel (inside frontend_) borrows the table, so the table
    // must be destroyed after it.
    std::unique_ptr<ShmWindowTable> shm_ = std::make_unique<ShmWindowTable>();
    std::unique_ptr<Frontend> frontend_;
    uint64_t backend_features_ = 0;
    std::vector<ShmRegion> regions_;
    // Written on the VMM thread (GET_CONFIG) and by the driver on a vCPU thread (write_config), read by
    // the transport from either.
    mutable std::mutex config_mutex_;
    std::vector<uint8_t> config_cache_;
    std::atomic<bool> backend_config_{false};  // the back-end serves the config space (SET_CONFIG allowed)
    std::vector<uint32_t> started_queues_;
    VirtioInterrupt* interrupt_ = nullptr;  // set by activate(), cleared by reset()
    asio::io_context* io_ = nullptr;
    Tracer tracer_;
    std::optional<Active> active_;             // between activate() and reset()
    std::optional<InflightBuffer> inflight_;   // kept across reconnects, dropped by reset()
    std::unique_ptr<FdWatcher> socket_watcher_;
    struct Timer;  // an asio::steady_timer, kept out of this header
    std::unique_ptr<Timer> reconnect_timer_;
    std::chrono::steady_clock::time_point reconnect_deadline_;
    bool lost_ = false;          // the back-end is gone; frontend_ may still await its teardown
    bool reconnecting_ = false;  // attempts are scheduled
    uint64_t reconnects_ = 0;
    // Handlers posted to the loop hold a weak copy; the destructor clears it.
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// Config for the device kinds the VMM attaches.
VhostUserDeviceConfig vhost_user_blk_config(std::string socket_path, uint16_t num_queues = 1);
// tag: 1 to 36 bytes. dax_window: 0 for none, else the size of shm region 0 (page multiple).
Result<VhostUserDeviceConfig> vhost_user_fs_config(std::string socket_path, const std::string& tag, uint64_t dax_window = 0);
VhostUserDeviceConfig vhost_user_generic_config(std::string socket_path, uint32_t device_id, uint16_t num_queues);

}  // namespace kite::vhost
