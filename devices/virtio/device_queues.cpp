#include "devices/virtio/device_queues.h"

#include "base/event_fd.h"

namespace kite {

Result<std::vector<std::optional<ServedQueue>>> serve_queues(const ActivateContext& ctx,
                                                             std::span<const uint16_t> max_sizes,
                                                             std::function<void(uint16_t)> on_kick) {
    std::vector<std::optional<ServedQueue>> out(max_sizes.size());
    for (size_t i = 0; i < max_sizes.size() && i < ctx.queues.size(); ++i) {
        if (!ctx.queues[i].ready) continue;
        if (i >= ctx.kick_fds.size()) return fail("no kick fd for queue " + std::to_string(i));
        auto queue = Queue::create(ctx.memory, ctx.queues[i], max_sizes[i], ctx.driver_features);
        if (!queue) return std::unexpected(queue.error());
        if (ctx.restored)
            if (auto at = queue->start_at_used_idx(); !at) return fail("queue " + std::to_string(i) + ": " + at.error().message);
        uint16_t index = static_cast<uint16_t>(i);
        auto kick = FdWatcher::create(ctx.io, ctx.kick_fds[i].get(), FdWatcher::Mode::kDrainEventfd,
                                      [on_kick, index] { on_kick(index); });
        if (!kick) return std::unexpected(kick.error());
        out[i] = ServedQueue{std::move(*queue), std::move(*kick), ctx.kick_fds[i]};
    }
    return out;
}

void ServedQueue::kick_again() const { signal_eventfd(kick_fd); }

Result<void> ActiveQueues::activate(const ActivateContext& ctx, std::span<const uint16_t> max_sizes,
                                    std::function<void(uint16_t)> on_kick) {
    auto served = serve_queues(ctx, max_sizes, std::move(on_kick));
    if (!served) return std::unexpected(served.error());
    queues = std::move(*served);
    memory = &ctx.memory;
    interrupt = &ctx.interrupt;
    return {};
}

void ActiveQueues::reset() {
    queues.clear();
    memory = nullptr;
    interrupt = nullptr;
}

void notify_or_flag(Queue& queue, uint16_t index, VirtioInterrupt& interrupt) {
    if (queue.should_notify()) interrupt.signal_used_queue(index);
    if (queue.is_broken()) interrupt.needs_reset();
}

}  // namespace kite
