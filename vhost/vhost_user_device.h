// A virtio device whose queues a vhost-user back-end serves (VirtioDevice over Frontend). The transport
// keeps the registers; at DRIVER_OK this device hands the back-end the guest memory table, the rings, the
// transport's kick eventfds and its irq eventfd. VIRTIO shared memory regions come from GET_SHMEM_CONFIG
// (or, for virtio-fs DAX, from the configuration) and are ShmWindows the back-end maps into with
// SHMEM_MAP; the VMM makes them guest-visible at shm_regions()[i].base through window observers.
//
// VhostUserGeneric: any device id, config space from the back-end (GET_CONFIG) when CONFIG is negotiated.
// VhostUserBlk: device id 2, config space from the back-end.
// VhostUserFs: device id 26, config space (tag, request queue count) built here, optional DAX window as
// shm region 0.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "devices/virtio/virtio_device.h"
#include "memory/error.h"
#include "vhost/frontend.h"
#include "vhost/shm_regions.h"

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
    TraceSink trace;                     // empty = no tracing
    std::vector<uint8_t> local_config;   // used instead of GET_CONFIG when non-empty (virtio-fs)
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
    Frontend& frontend() { return *frontend_; }
    // Total guest address space the shm regions take from shm_base.
    uint64_t shm_span() const;

protected:
    VhostUserDevice(VhostUserDeviceConfig config, std::vector<VhostMemoryRegion> memory);

private:
    Result<void> setup(asio::io_context& io);
    Result<void> set_up_memory_table();
    void config_changed();

    VhostUserDeviceConfig config_;
    std::vector<VhostMemoryRegion> memory_;
    // Declared before frontend_: the backend channel (inside frontend_) borrows the table, so the table
    // must be destroyed after it.
    std::unique_ptr<ShmWindowTable> shm_ = std::make_unique<ShmWindowTable>();
    std::unique_ptr<Frontend> frontend_;
    uint64_t backend_features_ = 0;
    std::vector<ShmRegion> regions_;
    std::vector<uint8_t> config_cache_;
    std::vector<uint32_t> started_queues_;
    VirtioInterrupt* interrupt_ = nullptr;  // set by activate(), cleared by reset()
};

// Config for the device kinds the VMM attaches.
VhostUserDeviceConfig vhost_user_blk_config(std::string socket_path, uint16_t num_queues = 1);
// tag: 1 to 36 bytes. dax_window: 0 for none, else the size of shm region 0 (page multiple).
Result<VhostUserDeviceConfig> vhost_user_fs_config(std::string socket_path, const std::string& tag, uint64_t dax_window = 0);
VhostUserDeviceConfig vhost_user_generic_config(std::string socket_path, uint32_t device_id, uint16_t num_queues);

}  // namespace kite::vhost
