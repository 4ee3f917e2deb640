// The vhost-user device kinds the VMM attaches, as settings for VhostUserDevice: the virtio id, the queues
// and the config-space rules of each kind. The builder (vmm/builder_devices.cpp) starts from these.
#pragma once

#include <cstdint>
#include <string>

#include "base/error.h"
#include "vhost/device_config.h"

namespace kite::vhost {

// Block (id 2): config space from the back-end, the size QEMU's front-end asks for.
VhostUserDeviceConfig vhost_user_blk_config(std::string socket_path, uint16_t num_queues = 1);
// virtio-fs (id 26): config space (tag, request queue count) built here. tag: 1 to 36 bytes. dax_window: 0
// for none, else the size of shm region 0 (page multiple).
Result<VhostUserDeviceConfig> vhost_user_fs_config(std::string socket_path, const std::string& tag, uint64_t dax_window = 0);
// Any device id: config space from the back-end (GET_CONFIG) when CONFIG is negotiated.
VhostUserDeviceConfig vhost_user_generic_config(std::string socket_path, uint32_t device_id, uint16_t num_queues);

}  // namespace kite::vhost
