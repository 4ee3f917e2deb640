#include "devices/virtio/queue.h"


#include <atomic>
#include <bit>

#include "base/log_limit.h"
#include "devices/virtio/spec.h"

namespace kite {

namespace {

constexpr uint16_t kAvailFlagNoInterrupt = 1;

// One limiter for every queue: a guest that resets its device gets new Queues, and can break them in a
// loop (and it has many queues to break).
LogLimit& breakage_log() {
    static LogLimit limit;
    return limit;
}

// Ring layout (spec 2.7): avail = flags, idx, ring[size], used_event; used = flags, idx,
// ring[size] of {id, len}, avail_event.
uint64_t desc_table_bytes(uint16_t size) { return 16ull * size; }
uint64_t avail_ring_bytes(uint16_t size) { return 6 + 2ull * size; }
uint64_t used_ring_bytes(uint16_t size) { return 6 + 8ull * size; }

struct UsedElem {
    uint32_t id;
    uint32_t len;
};

// A 16-bit ring index in guest memory, accessed atomically. The address is 2-byte aligned because
// the rings are (checked by Queue::validate).
std::optional<std::atomic_ref<uint16_t>> ring_index(GuestMemory& memory, GuestAddress addr) {
    auto bytes = memory.span(addr, sizeof(uint16_t));
    if (!bytes) return std::nullopt;
    return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(bytes->data()));
}

}  // namespace

Result<void> Queue::validate(GuestMemory& memory, const QueueConfig& config, uint16_t max_size) {
    // guest-controlled: the whole config.
    if (config.size == 0 || !std::has_single_bit(config.size) || config.size > max_size)
        return fail("queue size " + std::to_string(config.size) + " is not a power of two in [1, " +
                    std::to_string(max_size) + "]");
    if (!config.desc.is_aligned(16) || !config.avail.is_aligned(2) || !config.used.is_aligned(4))
        return fail("queue rings misaligned");
    if (!memory.contains(config.desc, desc_table_bytes(config.size)) ||
        !memory.contains(config.avail, avail_ring_bytes(config.size)) ||
        !memory.contains(config.used, used_ring_bytes(config.size)))
        return fail("queue rings outside guest RAM");
    // Overlapping rings would let the device's own used-ring writes make new buffers "available".
    uint64_t d = config.desc.value(), a = config.avail.value(), u = config.used.value();
    uint64_t dl = desc_table_bytes(config.size), al = avail_ring_bytes(config.size), ul = used_ring_bytes(config.size);
    if (ranges_overlap(d, dl, a, al) || ranges_overlap(d, dl, u, ul) || ranges_overlap(a, al, u, ul))
        return fail("queue rings overlap");
    return {};
}

Result<Queue> Queue::create(GuestMemory& memory, const QueueConfig& config, uint16_t max_size,
                            uint64_t driver_features) {
    if (auto r = validate(memory, config, max_size); !r) return std::unexpected(r.error());
    return Queue(memory, config, driver_features);
}

Queue::Queue(GuestMemory& memory, const QueueConfig& config, uint64_t driver_features)
    : memory_(&memory),
      config_(config),
      event_idx_(driver_features & virtio::kFeatureEventIdx),
      indirect_(driver_features & virtio::kFeatureIndirectDesc) {}

Result<uint16_t> Queue::start_at_used_idx() {
    auto idx = ring_index(*memory_, GuestAddress(config_.used.value() + 2));
    if (!idx) return fail("used ring not in guest RAM");
    uint16_t at = idx->load(std::memory_order_acquire);  // guest-controlled
    set_next_avail(at);
    set_next_used(at);
    return at;
}

void Queue::mark_broken(std::string reason) {
    if (!broken_) breakage_log().warn("virtqueue: {}", reason);
    broken_ = Error{std::move(reason), 0};
}

std::optional<uint16_t> Queue::load_avail_idx() {
    auto idx = ring_index(*memory_, GuestAddress(config_.avail.value() + 2));
    if (!idx) {
        mark_broken("avail ring no longer in guest RAM");
        return std::nullopt;
    }
    // Pairs with the driver's write barrier before it stores avail.idx: ring entries and descriptors
    // written before that store are visible after this load.
    return idx->load(std::memory_order_acquire);  // guest-controlled
}

void Queue::publish_avail_event() {
    if (!event_idx_) return;
    auto event = ring_index(*memory_, GuestAddress(config_.used.value() + 4 + 8ull * config_.size));
    if (!event) return mark_broken("used ring no longer in guest RAM");
    event->store(next_avail_, std::memory_order_relaxed);
    // Orders the avail_event store before the avail.idx re-load in pop(); pairs with the driver's full
    // barrier between storing avail.idx and loading avail_event.
    std::atomic_thread_fence(std::memory_order_seq_cst);
}

std::optional<DescriptorChain> Queue::pop() {
    if (broken_) return std::nullopt;
    auto avail_idx = load_avail_idx();
    if (!avail_idx) return std::nullopt;
    if (*avail_idx == next_avail_) {
        publish_avail_event();
        avail_idx = load_avail_idx();
        if (!avail_idx || *avail_idx == next_avail_) return std::nullopt;
    }
    uint16_t pending = *avail_idx - next_avail_;
    if (pending > config_.size) {
        mark_broken("avail.idx " + std::to_string(*avail_idx) + " is " + std::to_string(pending) +
                    " entries ahead of a queue of " + std::to_string(config_.size));
        return std::nullopt;
    }
    GuestAddress slot(config_.avail.value() + 4 + 2ull * (next_avail_ % config_.size));
    auto head = memory_->read_obj<uint16_t>(slot);  // guest-controlled
    if (!head) {
        mark_broken("avail ring no longer in guest RAM");
        return std::nullopt;
    }
    if (*head >= config_.size) {
        mark_broken("avail ring head " + std::to_string(*head) + " beyond a queue of " +
                    std::to_string(config_.size));
        return std::nullopt;
    }
    ++next_avail_;
    return DescriptorChain(*memory_, config_.desc, config_.size, *head, indirect_);
}

Result<void> Queue::add_used(uint16_t head, uint32_t len) {
    if (head >= config_.size) return fail("used head " + std::to_string(head) + " beyond the queue");
    GuestAddress slot(config_.used.value() + 4 + 8ull * (next_used_ % config_.size));
    if (!memory_->write_obj(slot, UsedElem{head, len})) {
        mark_broken("used ring no longer in guest RAM");
        return std::unexpected(*broken_);
    }
    auto idx = ring_index(*memory_, GuestAddress(config_.used.value() + 2));
    if (!idx) {
        mark_broken("used ring no longer in guest RAM");
        return std::unexpected(*broken_);
    }
    ++next_used_;
    // Pairs with the driver's read barrier after it loads used.idx: the element above is visible first.
    idx->store(next_used_, std::memory_order_release);
    return {};
}

bool Queue::should_notify() {
    uint16_t old_used = used_at_last_notify_check_;
    used_at_last_notify_check_ = next_used_;
    if (old_used == next_used_) return false;
    // Orders the used.idx store in add_used() before the used_event / flags load below; pairs with the
    // driver's full barrier between re-enabling callbacks (storing used_event) and re-reading used.idx.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (event_idx_) {
        auto used_event = ring_index(*memory_, GuestAddress(config_.avail.value() + 4 + 2ull * config_.size));
        if (!used_event) return true;
        uint16_t event = used_event->load(std::memory_order_relaxed);  // guest-controlled
        // vring_need_event (spec 2.7.10): notify if used_event lies in [old_used, next_used).
        return static_cast<uint16_t>(next_used_ - event - 1) < static_cast<uint16_t>(next_used_ - old_used);
    }
    auto flags = ring_index(*memory_, config_.avail);
    if (!flags) return true;
    return !(flags->load(std::memory_order_relaxed) & kAvailFlagNoInterrupt);  // guest-controlled
}

}  // namespace kite
