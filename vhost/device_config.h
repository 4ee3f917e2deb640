// What a vhost-user device is made of: its settings (device_kinds.h fills them per kind, the builder adds
// the rest) and the guest RAM the back-end maps. Shared by the device's three parts: the connection, the
// reconnect policy and the virtio adapter (see vhost_user_device.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/fd.h"
#include "memory/address.h"
#include "vhost/protocol.h"
#include "vhost/socket.h"
#include "vhost/trace.h"

namespace kite::vhost {

// One guest RAM region as the VMM maps it: the back-end gets the same fd and offset.
struct VhostMemoryRegion {
    GuestAddress guest_addr;
    uint64_t size = 0;
    void* host = nullptr;     // the VMM's mapping of this region (what GuestMemory::span returns)
    BorrowedFd fd;            // the memfd behind the region
    uint64_t fd_offset = 0;   // where the region starts in fd
};

struct VhostUserDeviceConfig {
    std::string socket_path;
    uint32_t device_id = 0;
    uint16_t num_queues = 1;
    uint16_t queue_size = 256;
    PeerRule peer;                       // who may serve the socket (checked at every connect)
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

}  // namespace kite::vhost
