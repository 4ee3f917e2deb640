// A split virtqueue laid out in HeapMemory the way a driver would, for device-side tests.
#pragma once

#include <cstdint>
#include <vector>

#include "devices/virtio/virtio_device.h"
#include "memory/heap_memory.h"

namespace kite::test {

inline constexpr uint16_t kDescNext = 1;
inline constexpr uint16_t kDescWrite = 2;
inline constexpr uint16_t kDescIndirect = 4;

struct Segment {
    uint64_t addr;
    uint32_t len;
    bool writable = false;
};

class FakeQueue {
public:
    // Rings at `base` (16-byte aligned) in memory; descriptors are handed out from index 0 upwards.
    FakeQueue(HeapMemory& memory, uint16_t size, uint64_t base = 0x1000)
        : memory_(memory),
          size_(size),
          desc_(base),
          avail_(base + 16ull * size),
          used_((base + 16ull * size + 6 + 2ull * size + 3) & ~3ull) {}

    QueueConfig config() const { return QueueConfig{size_, true, GuestAddress(desc_), GuestAddress(avail_), GuestAddress(used_)}; }

    void set_desc(uint16_t index, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
        write_desc(desc_ + 16ull * index, addr, len, flags, next);
    }
    void write_desc(uint64_t at, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
        memory_.write_obj(GuestAddress(at), addr);
        memory_.write_obj(GuestAddress(at + 8), len);
        memory_.write_obj(GuestAddress(at + 12), flags);
        memory_.write_obj(GuestAddress(at + 14), next);
    }

    // Builds a chain from consecutive free descriptors and makes it available. Returns its head.
    uint16_t add_chain(const std::vector<Segment>& segments) {
        uint16_t head = next_free_;
        for (size_t i = 0; i < segments.size(); ++i) {
            uint16_t index = next_free_++;
            uint16_t flags = (segments[i].writable ? kDescWrite : 0) | (i + 1 < segments.size() ? kDescNext : 0);
            set_desc(index, segments[i].addr, segments[i].len, flags, static_cast<uint16_t>(index + 1));
        }
        publish(head);
        return head;
    }

    void publish(uint16_t head) {
        memory_.write_obj(GuestAddress(avail_ + 4 + 2ull * (avail_idx_ % size_)), head);
        set_avail_idx(++avail_idx_);
    }
    void set_avail_idx(uint16_t idx) {
        avail_idx_ = idx;
        memory_.write_obj(GuestAddress(avail_ + 2), idx);
    }
    void set_avail_flags(uint16_t flags) { memory_.write_obj(GuestAddress(avail_), flags); }
    void set_used_event(uint16_t idx) { memory_.write_obj(GuestAddress(avail_ + 4 + 2ull * size_), idx); }

    uint16_t used_idx() const { return *memory_.read_obj<uint16_t>(GuestAddress(used_ + 2)); }
    uint32_t used_id(uint16_t slot) const { return *memory_.read_obj<uint32_t>(GuestAddress(used_ + 4 + 8ull * slot)); }
    uint32_t used_len(uint16_t slot) const { return *memory_.read_obj<uint32_t>(GuestAddress(used_ + 8 + 8ull * slot)); }
    uint16_t avail_event() const { return *memory_.read_obj<uint16_t>(GuestAddress(used_ + 4 + 8ull * size_)); }

    uint64_t desc_addr() const { return desc_; }
    uint64_t avail_addr() const { return avail_; }
    uint64_t used_addr() const { return used_; }

private:
    HeapMemory& memory_;
    uint16_t size_;
    uint64_t desc_, avail_, used_;
    uint16_t next_free_ = 0;
    uint16_t avail_idx_ = 0;
};

}  // namespace kite::test
