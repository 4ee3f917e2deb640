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
    auto max = queue_max_sizes();
    auto queues = serve_queues(ctx, max, [this](uint16_t q) {
        if (q == kReceiveQueue) deliver_input();
        if (q == kTransmitQueue) transmit();
    });
    if (!queues) return std::unexpected(queues.error());
    memory_ = &ctx.memory;
    interrupt_ = &ctx.interrupt;
    queues_ = std::move(*queues);
    transmit();
    deliver_input();
    return {};
}

void ConsoleDevice::reset() {
    queues_.clear();
    memory_ = nullptr;
    interrupt_ = nullptr;
}

void ConsoleDevice::deliver_input() {
    if (queues_.size() <= kReceiveQueue || !queues_[kReceiveQueue]) return;
    Queue& q = queues_[kReceiveQueue]->queue;
    std::vector<std::byte> piece;
    int budget = queues_[kReceiveQueue]->budget();
    while (!pending_input_.empty()) {
        if (budget-- == 0) {
            queues_[kReceiveQueue]->kick_again();
            break;
        }
        auto chain = q.pop();
        if (!chain) break;  // pop() armed avail_event: the driver kicks when it adds buffers
        uint32_t written = 0;
        auto buffers = chain->collect();
        if (!buffers) {
            log_.warn("virtio-console: bad receive buffer: {}", buffers.error().message);
        } else {
            ChainWriter writer(*memory_, std::move(buffers->writable));
            size_t n = static_cast<size_t>(std::min<uint64_t>(writer.remaining(), pending_input_.size()));
            piece.assign(pending_input_.begin(), pending_input_.begin() + n);
            if (writer.write(piece)) {
                pending_input_.erase(pending_input_.begin(), pending_input_.begin() + n);
                written = static_cast<uint32_t>(n);
            }
        }
        if (!q.add_used(chain->head(), written)) break;
    }
    notify_or_flag(q, kReceiveQueue, *interrupt_);
}

void ConsoleDevice::transmit() {
    if (queues_.size() <= kTransmitQueue || !queues_[kTransmitQueue]) return;
    Queue& q = queues_[kTransmitQueue]->queue;
    std::vector<std::byte> piece;
    int budget = queues_[kTransmitQueue]->budget();
    while (true) {
        if (budget-- == 0) {
            queues_[kTransmitQueue]->kick_again();
            break;
        }
        auto chain = q.pop();
        if (!chain) break;
        auto buffers = chain->collect();
        if (!buffers) {
            log_.warn("virtio-console: bad transmit buffer: {}", buffers.error().message);
        } else {
            ChainReader reader(*memory_, std::move(buffers->readable));
            while (reader.remaining() > 0) {
                piece.resize(std::min(reader.remaining(), kOutputPiece));
                if (!reader.read(piece)) break;
                sink_(piece);
            }
        }
        if (!q.add_used(chain->head(), 0)) break;
    }
    notify_or_flag(q, kTransmitQueue, *interrupt_);
}

}  // namespace kite
