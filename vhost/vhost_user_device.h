// A virtio device whose queues a vhost-user back-end serves: the thin adapter between the VirtioDevice
// interface (features, config space, activate, reset, shm regions) and the back-end. The transport keeps
// the registers; at DRIVER_OK this device hands the back-end the guest memory table, the rings, the
// transport's kick eventfds and its irq eventfd. VIRTIO shared memory regions come from GET_SHMEM_CONFIG
// (or, for virtio-fs DAX, from the configuration) and are ShmWindows the back-end maps into with
// SHMEM_MAP; the VMM makes them guest-visible at shm_regions()[i].base through window observers.
//
// Its parts: DeviceConnection (the Frontend, handshake, rings, replay), ReconnectPolicy (when to try
// again), ConfigSpace (the cached config space). The settings of each device kind: device_kinds.h.
//
// Reconnect: when the back-end dies (its socket hangs up, or a request on it fails) the guest keeps running
// and its I/O on this device waits. Every mapping the dead back-end made is dropped. The device retries the
// socket until `reconnect_timeout` and then replays what the back-end had (see device_connection.h). No
// back-end within the timeout: DEVICE_NEEDS_RESET; a later driver activate() tries again.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/log_limit.h"
#include "devices/virtio/virtio_device.h"
#include "vhost/config_space.h"
#include "vhost/device_config.h"
#include "vhost/device_connection.h"
#include "vhost/reconnect_policy.h"
#include "vhost/shm_regions.h"

namespace kite::vhost {

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
    std::vector<ShmRegion> shm_regions() const override { return connection_->regions(); }
    bool interrupt_status_always_used() const override { return true; }

    // The host windows behind shm_regions(), for the VMM's memslot observers.
    ShmWindowTable& shm_table() { return connection_->shm_table(); }
    // Only while online().
    Frontend& frontend() { return connection_->frontend(); }
    // False from the moment the back-end is lost until a reconnect has replayed everything.
    bool online() const { return connection_->online(); }
    // Completed reconnects since connect().
    uint64_t reconnects() const { return reconnects_; }
    // Handlers the connection posted to the VMM loop that have not run yet (coalesced, so bounded).
    size_t pending_posts() const { return connection_->pending_posts(); }
    // Total guest address space the shm regions take from shm_base.
    uint64_t shm_span() const;

private:
    VhostUserDevice(VhostUserDeviceConfig config, std::vector<VhostMemoryRegion> memory, asio::io_context& io);

    ReconnectPolicy::Attempt try_reconnect();
    void give_up(const std::string& why);

    VhostUserDeviceConfig config_;
    ConfigSpace config_space_;
    VirtioInterrupt* interrupt_ = nullptr;  // set by activate(), cleared by reset()
    std::optional<ActiveRings> active_;     // between activate() and reset()
    uint64_t reconnects_ = 0;
    LogLimit log_;  // reconnects and give-ups come as often as a back-end dies
    // Declared after what they borrow and call back into, so they go first.
    std::unique_ptr<DeviceConnection> connection_;
    std::unique_ptr<ReconnectPolicy> reconnect_;
};

}  // namespace kite::vhost
