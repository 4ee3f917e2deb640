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
    if (auto r = active_.activate(ctx, queue_max_sizes(), [this](uint16_t) { process(); }); !r) return r;
    process();  // buffers made available before activation
    return {};
}

void RngDevice::reset() {
    active_.reset();
}

void RngDevice::process() {
    if (active_.queues.empty() || !active_.queues[0]) return;
    Queue& q = active_.queues[0]->queue;
    std::vector<std::byte> random;
    active_.queues[0]->drain([&](DescriptorChain& chain) {
        uint32_t written = 0;
        auto buffers = chain.collect();
        if (!buffers) {
            log_.warn("virtio-rng: bad request: {}", buffers.error().message);
        } else {
            ChainWriter writer(*active_.memory, std::move(buffers->writable));
            random.resize(std::min<uint64_t>(writer.remaining(), kMaxBytesPerRequest));
            ssize_t n = ::getrandom(random.data(), random.size(), 0);
            if (n > 0 && writer.write(std::span(random).first(static_cast<size_t>(n)))) written = uint32_t(n);
        }
        return q.add_used(chain.head(), written);
    });
    notify_or_flag(q, 0, *active_.interrupt);
}

}  // namespace kite
