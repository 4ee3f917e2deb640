#include "devices/virtio/console.h"

#include <algorithm>
#include <cstring>

#include "devices/virtio/chain_io.h"
#include "devices/virtio/spec.h"

namespace kite {

namespace {
constexpr uint16_t kReceiveQueue = 0;
constexpr uint16_t kTransmitQueue = 1;
// Output is handed to the sink in pieces of this size: a chain may be up to kMaxChainBytes long.
constexpr uint64_t kOutputPiece = 4096;
}  // namespace

uint32_t ConsoleDevice::device_id() const { return virtio::kIdConsole; }
uint64_t ConsoleDevice::device_features() const { return virtio::kCommonFeatures; }

void ConsoleDevice::read_config(uint64_t, std::span<uint8_t> data) {
    // cols, rows, max_nr_ports, emerg_wr: all unused without SIZE, MULTIPORT and EMERG_WRITE.
    std::memset(data.data(), 0, data.size());
}

void ConsoleDevice::enqueue_input(std::span<const std::byte> bytes) {
    size_t room = kMaxPendingInput - pending_input_.size();
    if (bytes.size() > room) log_.warn("virtio-console: guest not reading, {} input bytes dropped", bytes.size() - room);
    pending_input_.insert(pending_input_.end(), bytes.begin(), bytes.begin() + std::min(room, bytes.size()));
    deliver_input();
}

Result<void> ConsoleDevice::activate(ActivateContext ctx) {
    auto served = active_.activate(ctx, queue_max_sizes(), [this](uint16_t q) {
        if (q == kReceiveQueue) deliver_input();
        if (q == kTransmitQueue) transmit();
    });
    if (!served) return served;
    transmit();
    deliver_input();
    return {};
}

void ConsoleDevice::reset() {
    active_.reset();
}

void ConsoleDevice::deliver_input() {
    if (active_.queues.size() <= kReceiveQueue || !active_.queues[kReceiveQueue]) return;
    Queue& q = active_.queues[kReceiveQueue]->queue;
    std::vector<std::byte> piece;
    auto serve = [&](DescriptorChain& chain) {
        uint32_t written = 0;
        auto buffers = chain.collect();
        if (!buffers) {
            log_.warn("virtio-console: bad receive buffer: {}", buffers.error().message);
        } else {
            ChainWriter writer(*active_.memory, std::move(buffers->writable));
            size_t n = static_cast<size_t>(std::min<uint64_t>(writer.remaining(), pending_input_.size()));
            piece.assign(pending_input_.begin(), pending_input_.begin() + n);
            if (writer.write(piece)) {
                pending_input_.erase(pending_input_.begin(), pending_input_.begin() + n);
                written = static_cast<uint32_t>(n);
            }
        }
        return q.add_used(chain.head(), written);
    };
    active_.queues[kReceiveQueue]->drain(serve, [this] { return !pending_input_.empty(); });
    notify_or_flag(q, kReceiveQueue, *active_.interrupt);
}

void ConsoleDevice::transmit() {
    if (active_.queues.size() <= kTransmitQueue || !active_.queues[kTransmitQueue]) return;
    Queue& q = active_.queues[kTransmitQueue]->queue;
    std::vector<std::byte> piece;
    active_.queues[kTransmitQueue]->drain([&](DescriptorChain& chain) {
        auto buffers = chain.collect();
        if (!buffers) {
            log_.warn("virtio-console: bad transmit buffer: {}", buffers.error().message);
        } else {
            ChainReader reader(*active_.memory, std::move(buffers->readable));
            while (reader.remaining() > 0) {
                piece.resize(std::min(reader.remaining(), kOutputPiece));
                if (!reader.read(piece)) break;
                sink_(piece);
            }
        }
        return q.add_used(chain.head(), 0);
    });
    notify_or_flag(q, kTransmitQueue, *active_.interrupt);
}

}  // namespace kite
