#include "vhost/device_kinds.h"

#include <cstring>

#include <fmt/format.h>

namespace kite::vhost {

namespace {

constexpr uint32_t kIdBlock = 2;
constexpr uint32_t kIdFs = 26;

}  // namespace

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
