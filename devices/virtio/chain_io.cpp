#include "devices/virtio/chain_io.h"

#include <algorithm>
#include <utility>

namespace kite {

BufferCursor::BufferCursor(GuestMemory& memory, std::vector<GuestBuffer> buffers)
    : memory_(&memory), buffers_(std::move(buffers)) {
    for (const auto& b : buffers_) remaining_ += b.len;
}

template <class Fn>
Result<void> BufferCursor::walk(uint64_t n, Fn&& fn) {
    if (n > remaining_) return fail("descriptor chain too short: " + std::to_string(n) + " bytes wanted, " +
                                    std::to_string(remaining_) + " left");
    while (n > 0) {
        const GuestBuffer& b = buffers_[index_];
        uint64_t piece = std::min<uint64_t>(n, b.len - offset_);
        if (piece > 0) {
            // In range: DescriptorChain checked addr + len lies in guest RAM.
            if (auto r = fn(GuestAddress(b.addr.value() + offset_), piece); !r) return r;
        }
        offset_ += piece;
        n -= piece;
        remaining_ -= piece;
        if (offset_ == b.len) {
            ++index_;
            offset_ = 0;
        }
    }
    return {};
}

Result<void> BufferCursor::skip(uint64_t n) {
    return walk(n, [](GuestAddress, uint64_t) -> Result<void> { return {}; });
}

Result<std::vector<iovec>> BufferCursor::take_iovecs(uint64_t n) {
    std::vector<iovec> out;
    auto r = walk(n, [&](GuestAddress addr, uint64_t len) -> Result<void> {
        while (len > 0) {
            uint64_t piece = std::min(len, memory_->contiguous_from(addr));
            auto host = memory_->span(addr, piece);
            if (piece == 0 || !host) return fail("guest buffer no longer in guest RAM");
            out.push_back(iovec{host->data(), host->size()});
            addr = GuestAddress(addr.value() + piece);
            len -= piece;
        }
        return {};
    });
    if (!r) return std::unexpected(r.error());
    return out;
}

Result<void> ChainReader::read(std::span<std::byte> out) {
    uint64_t done = 0;
    return walk(out.size(), [&](GuestAddress addr, uint64_t len) {
        auto r = memory_->read(addr, out.subspan(done, len));
        done += len;
        return r;
    });
}

Result<void> ChainWriter::write(std::span<const std::byte> in) {
    uint64_t done = 0;
    auto r = walk(in.size(), [&](GuestAddress addr, uint64_t len) {
        auto w = memory_->write(addr, in.subspan(done, len));
        done += len;
        return w;
    });
    if (r) written_ += in.size();
    return r;
}

std::optional<GuestAddress> take_last_byte(std::vector<GuestBuffer>& buffers) {
    while (!buffers.empty() && buffers.back().len == 0) buffers.pop_back();
    if (buffers.empty()) return std::nullopt;
    GuestBuffer& last = buffers.back();
    --last.len;
    return GuestAddress(last.addr.value() + last.len);
}

}  // namespace kite
