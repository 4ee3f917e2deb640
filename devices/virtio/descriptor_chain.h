// A descriptor chain popped from a split virtqueue, walked as a bounded iterator (ARCHITECTURE.md
// example 4). Every descriptor is guest-controlled; the walk stops with an error on:
//  - more descriptors than the queue size (direct part) or the indirect table length (indirect part),
//    which is how descriptor loops end;
//  - a buffer not entirely inside guest RAM;
//  - a chain whose buffers add up to more than kMaxChainBytes;
//  - an indirect descriptor when VIRTIO_F_RING_INDIRECT_DESC was not negotiated, inside an indirect
//    table, with NEXT set, with a length that is zero or not a multiple of 16, longer than
//    kMaxIndirectEntries, or outside guest RAM; a NEXT index beyond the table;
//  - a device-readable buffer after a device-writable one (the driver must put writable ones last).
// Device code sees buffers (GuestBuffer), never descriptors.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "memory/address.h"
#include "memory/guest_memory.h"

namespace kite {

// Largest sum of buffer lengths accepted in one chain. Linux never builds requests near this (block
// requests are bounded by max_sectors, 1.25 MiB by default; a net packet by 64 KiB + header); the cap
// bounds what a device may have to allocate or iterate for one chain.
inline constexpr uint64_t kMaxChainBytes = 64ull << 20;
// Longest indirect table accepted. Linux sizes a table by its scatterlist (virtio-blk seg_max + 2, net
// MAX_SKB_FRAGS + 2), far below this; the cap bounds the walk of one table.
inline constexpr uint32_t kMaxIndirectEntries = 1024;

struct GuestBuffer {
    GuestAddress addr;
    uint32_t len = 0;
};

// The buffers of one chain, split by direction, in chain order.
struct ChainBuffers {
    std::vector<GuestBuffer> readable;  // device reads these (driver -> device)
    std::vector<GuestBuffer> writable;  // device writes these (device -> driver)
};

class DescriptorChain {
public:
    struct Buffer {
        GuestBuffer buffer;
        bool writable = false;
    };

    DescriptorChain(GuestMemory& memory, GuestAddress desc_table, uint16_t queue_size, uint16_t head,
                    bool indirect_allowed);

    // The head index to hand back with Queue::add_used().
    uint16_t head() const { return head_; }

    // The next buffer, validated. nullopt at the end of the chain or at the first error (see error()).
    std::optional<Buffer> next();

    // Set once the walk hit a rule violation; the chain then yields nothing more.
    const std::optional<Error>& error() const { return error_; }

    // Walks the rest of the chain. Fails if any part of it is invalid.
    Result<ChainBuffers> collect();

private:
    struct RawDescriptor {
        uint64_t addr;
        uint32_t len;
        uint16_t flags;
        uint16_t next;
    };
    static_assert(sizeof(RawDescriptor) == 16);

    // Records the error, ends the walk and returns nullopt for next() to return.
    std::nullopt_t stop(std::string message);

    GuestMemory* memory_;
    uint16_t head_;
    bool indirect_allowed_;
    GuestAddress table_;        // the table being walked: the queue's, or an indirect one
    uint32_t table_entries_;    // entries in that table
    bool in_indirect_ = false;
    std::optional<uint32_t> next_index_;  // index into table_ of the next descriptor, if any
    uint32_t visited_ = 0;      // descriptors read from the current table
    uint32_t direct_limit_;     // queue size: most descriptors a direct chain may have
    uint64_t total_bytes_ = 0;
    bool seen_writable_ = false;
    std::optional<Error> error_;
};

}  // namespace kite
