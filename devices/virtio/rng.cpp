#include "devices/virtio/rng.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "devices/virtio/chain_io.h"
#include "devices/virtio/spec.h"

namespace kite {

uint32_t RngDevice::device_id() const { return virtio::kIdEntropy; }
uint64_t RngDevice::device_features() const { return virtio::kCommonFeatures; }

void RngDevice::read_config(uint64_t, std::span<uint8_t> data) {
    std::memset(data.data(), 0, data.size());  // no config space
}

Result<void> RngDevice::activate(ActivateContext ctx) {
    auto max = queue_max_sizes();
    auto queues = serve_queues(ctx, max, [this](uint16_t) { process(); });
    if (!queues) return std::unexpected(queues.error());
    memory_ = &ctx.memory;
    interrupt_ = &ctx.interrupt;
    queues_ = std::move(*queues);
    process();  // buffers made available before activation
    return {};
}

void RngDevice::reset() {
    queues_.clear();
    memory_ = nullptr;
    interrupt_ = nullptr;
}

void RngDevice::process() {
    if (queues_.empty() || !queues_[0]) return;
    Queue& q = queues_[0]->queue;
    std::vector<std::byte> random;
    int budget = queues_[0]->budget();
    while (true) {
        if (budget-- == 0) {
            queues_[0]->kick_again();
            break;
        }
        auto chain = q.pop();
        if (!chain) break;
        uint32_t written = 0;
        auto buffers = chain->collect();
        if (!buffers) {
            log_.warn("virtio-rng: bad request: {}", buffers.error().message);
        } else {
            ChainWriter writer(*memory_, std::move(buffers->writable));
            random.resize(std::min<uint64_t>(writer.remaining(), kMaxBytesPerRequest));
            ssize_t n = ::getrandom(random.data(), random.size(), 0);
            if (n > 0 && writer.write(std::span(random).first(static_cast<size_t>(n)))) written = uint32_t(n);
        }
        if (!q.add_used(chain->head(), written)) break;
    }
    notify_or_flag(q, 0, *interrupt_);
}

}  // namespace kite
