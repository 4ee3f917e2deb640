#include "devices/virtio/net.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "devices/virtio/chain_io.h"
#include "devices/virtio/net_features.h"
#include "devices/virtio/spec.h"
#include "devices/virtio/tap.h"

namespace kite {

namespace {
constexpr uint16_t kRxQueue = 0;
constexpr uint16_t kTxQueue = 1;
constexpr uint16_t kLinkUp = 1;
constexpr size_t kNumBuffersOffset = 10;  // virtio_net_hdr.num_buffers
}  // namespace

Result<std::shared_ptr<NetDevice>> NetDevice::open_tap(const std::string& tap_name, MacAddress mac) {
    auto fd = kite::open_tap(tap_name);
    if (!fd) return std::unexpected(fd.error());
    return std::make_shared<NetDevice>(std::move(*fd), mac, true);
}

NetDevice::NetDevice(UniqueFd fd, MacAddress mac, bool is_tap)
    : fd_(std::move(fd)), is_tap_(is_tap), rx_frame_(kMaxFrame), tx_frame_(kMaxFrame) {
    std::memcpy(config_.data(), mac.data(), mac.size());
    std::memcpy(config_.data() + 6, &kLinkUp, sizeof kLinkUp);
    uint16_t pairs = 1;
    std::memcpy(config_.data() + 8, &pairs, sizeof pairs);
}

uint32_t NetDevice::device_id() const { return virtio::kIdNet; }

uint64_t NetDevice::device_features() const {
    return virtio::kCommonFeatures | net::kCsum | net::kGuestCsum | net::kMac | net::kGuestTso4 | net::kGuestTso6 |
           net::kGuestUfo | net::kHostTso4 | net::kHostTso6 | net::kStatus;
}

void NetDevice::read_config(uint64_t offset, std::span<uint8_t> data) {
    // guest-controlled: offset and size.
    for (size_t i = 0; i < data.size(); ++i)
        data[i] = offset < config_.size() && i < config_.size() - offset ? config_[offset + i] : 0;
}

Result<void> NetDevice::activate(ActivateContext ctx) {
    if (is_tap_) {
        if (auto r = set_tap_offloads(fd_.get(), ctx.driver_features); !r) return r;
    }
    auto watcher = FdWatcher::create(ctx.io, fd_.get(), FdWatcher::Mode::kLevel, [this] { receive(); });
    if (!watcher) return std::unexpected(watcher.error());
    auto served = active_.activate(ctx, queue_max_sizes(), [this](uint16_t q) {
        if (q == kRxQueue) {
            if (tap_watcher_) tap_watcher_->resume();
            receive();
        }
        if (q == kTxQueue) transmit();
    });
    if (!served) return served;
    tap_watcher_ = std::move(*watcher);
    rx_len_ = 0;
    transmit();
    return {};
}

void NetDevice::reset() {
    tap_watcher_.reset();
    active_.reset();
    rx_len_ = 0;
    // The next driver may accept fewer offloads; the tap must not hand it GSO frames meanwhile.
    if (is_tap_) (void)set_tap_offloads(fd_.get(), 0);
}

bool NetDevice::read_frame() {
    while (true) {
        ssize_t n = ::read(fd_.get(), rx_frame_.data(), rx_frame_.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            if (errno != EAGAIN) log_.warn("virtio-net: tap read: {}", std::strerror(errno));
            return false;
        }
        if (size_t(n) < kVnetHeaderSize) continue;  // not a frame with a header: drop it
        rx_len_ = size_t(n);
        // The tap leaves num_buffers alone; without MRG_RXBUF every frame takes exactly one buffer.
        uint16_t one = 1;
        std::memcpy(rx_frame_.data() + kNumBuffersOffset, &one, sizeof one);
        return true;
    }
}

void NetDevice::receive() {
    if (active_.queues.size() <= kRxQueue || !active_.queues[kRxQueue]) {
        if (tap_watcher_) tap_watcher_->pause();  // nowhere to put frames until the driver sets up rx
        return;
    }
    Queue& q = active_.queues[kRxQueue]->queue;
    for (int i = 0; i < kRxBatch; ++i) {
        if (rx_len_ == 0 && !read_frame()) break;
        auto chain = q.pop();
        if (!chain) {
            // Keep the frame; pop() armed avail_event, so the driver kicks rx when it adds buffers.
            tap_watcher_->pause();
            break;
        }
        uint32_t used = 0;
        auto buffers = chain->collect();
        if (!buffers) {
            log_.warn("virtio-net: bad receive chain: {}", buffers.error().message);
        } else {
            ChainWriter writer(*active_.memory, std::move(buffers->writable));
            if (writer.remaining() < rx_len_)
                log_.warn("virtio-net: {}-byte frame dropped: receive buffer of {} bytes", rx_len_, writer.remaining());
            else if (writer.write(std::span(rx_frame_).first(rx_len_)))
                used = uint32_t(rx_len_);
        }
        rx_len_ = 0;
        if (!q.add_used(chain->head(), used)) break;
    }
    notify_or_flag(q, kRxQueue, *active_.interrupt);
}

void NetDevice::transmit() {
    if (active_.queues.size() <= kTxQueue || !active_.queues[kTxQueue]) return;
    Queue& q = active_.queues[kTxQueue]->queue;
    active_.queues[kTxQueue]->drain([&](DescriptorChain& chain) {
        auto buffers = chain.collect();
        if (!buffers) {
            log_.warn("virtio-net: bad transmit chain: {}", buffers.error().message);
        } else {
            ChainReader reader(*active_.memory, std::move(buffers->readable));
            uint64_t len = reader.remaining();  // guest-controlled
            if (len < kVnetHeaderSize || len > tx_frame_.size()) {
                log_.warn("virtio-net: transmit of {} bytes dropped", len);
            } else if (reader.read(std::span(tx_frame_).first(len))) {
                // A tap write never blocks for long; on error (bad header, queue full) the frame is dropped.
                if (::write(fd_.get(), tx_frame_.data(), len) < 0)
                    log_.warn("virtio-net: tap write: {}", std::strerror(errno));
            }
        }
        return q.add_used(chain.head(), 0);
    });
    notify_or_flag(q, kTxQueue, *active_.interrupt);
}

}  // namespace kite
