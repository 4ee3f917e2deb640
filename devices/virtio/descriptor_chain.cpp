#include "devices/virtio/descriptor_chain.h"

#include <utility>

namespace kite {

namespace {
constexpr uint16_t kDescNext = 1;
constexpr uint16_t kDescWrite = 2;
constexpr uint16_t kDescIndirect = 4;
constexpr uint32_t kDescSize = 16;
}  // namespace

DescriptorChain::DescriptorChain(GuestMemory& memory, GuestAddress desc_table, uint16_t queue_size,
                                 uint16_t head, bool indirect_allowed)
    : memory_(&memory),
      head_(head),
      indirect_allowed_(indirect_allowed),
      table_(desc_table),
      table_entries_(queue_size),
      next_index_(head),
      direct_limit_(queue_size) {}

std::nullopt_t DescriptorChain::stop(std::string message) {
    error_ = Error{std::move(message), 0};
    next_index_.reset();
    return std::nullopt;
}

std::optional<DescriptorChain::Buffer> DescriptorChain::next() {
    while (next_index_ && !error_) {
        uint32_t index = *next_index_;
        if (index >= table_entries_) {
            return stop("descriptor index " + std::to_string(index) + " beyond a table of " +
                      std::to_string(table_entries_));
        }
        uint32_t limit = in_indirect_ ? table_entries_ : direct_limit_;
        if (++visited_ > limit) {
            return stop("descriptor chain longer than " + std::to_string(limit) + " (loop?)");
        }
        // guest-controlled: the whole descriptor.
        auto raw = memory_->read_obj<RawDescriptor>(GuestAddress(table_.value() + uint64_t{index} * kDescSize));
        if (!raw) {
            return stop("descriptor table outside guest RAM");
        }

        if (raw->flags & kDescIndirect) {
            if (!indirect_allowed_) return stop("indirect descriptor without RING_INDIRECT_DESC");
            if (in_indirect_) return stop("indirect descriptor inside an indirect table");
            if (raw->flags & kDescNext) return stop("indirect descriptor with NEXT set");
            if (raw->len == 0 || raw->len % kDescSize != 0)
                return stop("indirect table length " + std::to_string(raw->len) + " not a multiple of 16");
            if (raw->len / kDescSize > kMaxIndirectEntries)
                return stop("indirect table of " + std::to_string(raw->len / kDescSize) + " entries");
            if (!memory_->contains(GuestAddress(raw->addr), raw->len))
                return stop("indirect table outside guest RAM");
            table_ = GuestAddress(raw->addr);
            table_entries_ = raw->len / kDescSize;
            in_indirect_ = true;
            visited_ = 0;
            next_index_ = 0;
            continue;
        }

        bool writable = raw->flags & kDescWrite;
        if (!writable && seen_writable_)
            return stop("device-readable descriptor after a device-writable one");
        total_bytes_ += raw->len;  // cannot overflow: checked against the cap after every addition
        if (total_bytes_ > kMaxChainBytes)
            return stop("descriptor chain longer than " + std::to_string(kMaxChainBytes) + " bytes");
        if (!memory_->contains(GuestAddress(raw->addr), raw->len))
            return stop("descriptor buffer outside guest RAM");
        seen_writable_ = seen_writable_ || writable;
        if (raw->flags & kDescNext)
            next_index_ = raw->next;
        else
            next_index_.reset();
        return Buffer{GuestBuffer{GuestAddress(raw->addr), raw->len}, writable};
    }
    return std::nullopt;
}

Result<ChainBuffers> DescriptorChain::collect() {
    ChainBuffers out;
    while (auto b = next()) (b->writable ? out.writable : out.readable).push_back(b->buffer);
    if (error_) return std::unexpected(*error_);
    return out;
}

}  // namespace kite
