// virtio-rng (VIRTIO 1.2 section 5.4, device id 4): one request queue; every device-writable buffer the
// driver offers is filled with bytes from getrandom().
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "base/log_limit.h"
#include "devices/virtio/device_queues.h"
#include "devices/virtio/virtio_device.h"

namespace kite {

class RngDevice final : public VirtioDevice {
public:
    // Most bytes handed out per request: the driver asks again for more (spec allows a partial fill).
    static constexpr uint32_t kMaxBytesPerRequest = 64 * 1024;

    uint32_t device_id() const override;
    uint64_t device_features() const override;
    std::vector<uint16_t> queue_max_sizes() const override { return {256}; }
    void read_config(uint64_t offset, std::span<uint8_t> data) override;
    void write_config(uint64_t, std::span<const uint8_t>) override {}
    Result<void> activate(ActivateContext ctx) override;
    void reset() override;

private:
    void process();

    ActiveQueues active_;
    LogLimit log_;
};

}  // namespace kite
