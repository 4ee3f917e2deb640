// virtio-net (VIRTIO 1.2 section 5.1, device id 1) on a tap fd: queue 0 receiveq, queue 1 transmitq, no
// control queue, no mergeable rx buffers. Frames cross with their 12-byte virtio_net_hdr unchanged (the
// tap speaks the same header), so checksum and segmentation offloads pass through; the tap is told
// which offloads the guest accepts after feature negotiation (TUNSETOFFLOAD).
//
// rx: the tap fd is watched on the VMM thread; a frame waits in a one-frame buffer while the driver has
// no receive buffer, and the tap is not read again until the driver kicks the receive queue.
// tx: on a transmit kick, each chain is copied out and written to the tap.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "base/fd.h"
#include "base/fd_watcher.h"
#include "base/log_limit.h"
#include "devices/virtio/device_queues.h"
#include "devices/virtio/virtio_device.h"

namespace kite {

using MacAddress = std::array<uint8_t, 6>;

class NetDevice final : public VirtioDevice {
public:
    // Header + the largest frame a tap hands out with TSO/UFO (64 KiB IP packet + Ethernet + VLAN).
    static constexpr size_t kMaxFrame = 12 + 65536 + 64;
    // Frames moved per wake-up before yielding the VMM thread to other work.
    static constexpr int kRxBatch = 64;

    // Opens the tap `tap_name` (root or a pre-created persistent tap).
    static Result<std::shared_ptr<NetDevice>> open_tap(const std::string& tap_name, MacAddress mac);
    // Uses an already open packet fd that speaks the 12-byte virtio_net_hdr framing: a tap (is_tap: the
    // device then sets its offloads), or for tests any SOCK_DGRAM/SOCK_SEQPACKET socket.
    NetDevice(UniqueFd fd, MacAddress mac, bool is_tap);

    uint32_t device_id() const override;
    uint64_t device_features() const override;
    std::vector<uint16_t> queue_max_sizes() const override { return {256, 256}; }
    void read_config(uint64_t offset, std::span<uint8_t> data) override;
    void write_config(uint64_t, std::span<const uint8_t>) override {}
    Result<void> activate(ActivateContext ctx) override;
    void reset() override;

private:
    void receive();
    void transmit();
    // Reads one frame from the tap into rx_frame_; false when nothing is waiting.
    bool read_frame();

    UniqueFd fd_;
    bool is_tap_;
    std::array<uint8_t, 10> config_{};  // mac[6], status, max_virtqueue_pairs

    ActiveQueues active_;
    std::unique_ptr<FdWatcher> tap_watcher_;
    std::vector<std::byte> rx_frame_;
    size_t rx_len_ = 0;  // bytes of a frame waiting in rx_frame_, 0 if none
    std::vector<std::byte> tx_frame_;
    LogLimit log_;
};

}  // namespace kite
