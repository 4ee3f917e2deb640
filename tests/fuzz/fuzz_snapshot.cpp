// Fuzzes the snapshot reader (a snapshot file is untrusted input): decoding must never crash, leak or
// allocate beyond the input's size, and whatever it accepts must re-encode to the very same bytes: from
// bytes in memory with the pages copied out and with them lent, and from a file with the pages read
// straight into the memory of a target (read_snapshot's way for `kite run --restore`).
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "vmm/snapshot/snapshot.h"

namespace {

void same_bytes_or_abort(const kite::SnapshotData& decoded, std::span<const uint8_t> in) {
    auto again = kite::encode_snapshot(decoded);
    if (!again || again->size() != in.size() || !std::equal(again->begin(), again->end(), in.begin())) std::abort();
}

// Through a file: the blocks' memory comes from the target (blocks up to 1 MiB, 4 MiB in all).
void through_file(std::span<const uint8_t> in) {
    static const int fd = ::memfd_create("fuzz-snapshot", MFD_CLOEXEC);
    if (fd < 0 || ::ftruncate(fd, 0) != 0) std::abort();
    if (!in.empty() && ::pwrite(fd, in.data(), in.size(), 0) != static_cast<ssize_t>(in.size())) std::abort();
    std::vector<std::vector<std::byte>> blocks;
    uint64_t total = 0;
    auto target = [&](const kite::MemoryBlockState& head) -> kite::Result<std::span<std::byte>> {
        if (head.size > (1u << 20) || total + head.size > (4u << 20)) return kite::fail("block too large here");
        total += head.size;
        return std::span<std::byte>(blocks.emplace_back(head.size, std::byte{0xee}));
    };
    auto decoded = kite::read_snapshot("/proc/self/fd/" + std::to_string(fd), target);
    if (!decoded) return;
    size_t next = 0;
    for (auto& m : decoded->memory) {
        if (!m.in_place) continue;
        const auto& block = blocks.at(next++);
        // Everything not listed must have been zeroed, and the listed pages are re-encoded from the block.
        std::vector<bool> listed(m.size / 4096);
        for (uint64_t i : m.page_indices) {
            listed[i] = true;
            auto* p = reinterpret_cast<const uint8_t*>(block.data()) + i * 4096;
            m.pages.insert(m.pages.end(), p, p + 4096);
        }
        for (size_t page = 0; page < listed.size(); ++page)
            for (size_t b = 0; b < 4096 && !listed[page]; ++b)
                if (block[page * 4096 + b] != std::byte{0}) std::abort();
        m.in_place = false;
    }
    same_bytes_or_abort(*decoded, in);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::span<const uint8_t> in(data, size);
    for (bool copy_pages : {true, false}) {
        auto decoded = kite::decode_snapshot(in, copy_pages);
        if (!decoded) return 0;
        same_bytes_or_abort(*decoded, in);
    }
    through_file(in);
    return 0;
}
