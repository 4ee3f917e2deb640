// Shared pieces of the VhostUserDevice tests: an interrupt that counts what the device signals, and the
// back-end configuration those tests serve (one 64-page shm region, a two-byte config space).
#pragma once

#include <cstdint>

#include "devices/virtio/virtio_device.h"
#include "vhost/backend/backend.h"

namespace kite::test {

struct RecordingInterrupt : VirtioInterrupt {
    void signal_used_queue(uint16_t) override { ++used; }
    void signal_config_change() override { ++config_changes; }
    void needs_reset() override { ++resets; }
    int used = 0, config_changes = 0, resets = 0;
};

inline vhost::BackendConfig backend_config() {
    vhost::BackendConfig config;
    config.shm_sizes = {64 * 4096};
    config.config_space = {0xaa, 0xbb};
    return config;
}

}  // namespace kite::test
