// virtio-console (VIRTIO 1.2 section 5.3, device id 3) with port 0 only (no MULTIPORT, no SIZE):
// queue 0 is receiveq (host -> guest), queue 1 transmitq (guest -> host).
// Output goes to a sink; input comes from the VMM thread through enqueue_input() and waits in a
// bounded buffer until the driver offers receive buffers.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "base/log_limit.h"
#include "devices/virtio/device_queues.h"
#include "devices/virtio/virtio_device.h"

namespace kite {

class ConsoleDevice final : public VirtioDevice {
public:
    using Sink = std::function<void(std::span<const std::byte>)>;
    // Input buffered while the guest reads nothing; more is dropped.
    static constexpr size_t kMaxPendingInput = 64 * 1024;

    // sink receives the guest's output on the VMM thread.
    explicit ConsoleDevice(Sink sink) : sink_(std::move(sink)) {}

    // VMM thread: bytes typed on the host (stdin) for the guest.
    void enqueue_input(std::span<const std::byte> bytes);

    uint32_t device_id() const override;
    uint64_t device_features() const override;
    std::vector<uint16_t> queue_max_sizes() const override { return {256, 256}; }
    void read_config(uint64_t offset, std::span<uint8_t> data) override;
    void write_config(uint64_t, std::span<const uint8_t>) override {}
    Result<void> activate(ActivateContext ctx) override;
    void reset() override;

private:
    void deliver_input();
    void transmit();

    Sink sink_;
    std::deque<std::byte> pending_input_;
    ActiveQueues active_;
    LogLimit log_;
};

}  // namespace kite
