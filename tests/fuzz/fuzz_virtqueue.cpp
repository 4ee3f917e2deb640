// Fuzzer bytes become guest memory and ring state: every chain is popped and walked through the chain
// reader/writer. Must terminate and never crash, whatever the rings and descriptors say.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "devices/virtio/chain_io.h"
#include "devices/virtio/queue.h"
#include "devices/virtio/spec.h"
#include "memory/heap_memory.h"

#include <spdlog/spdlog.h>

using namespace kite;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const bool quiet = (spdlog::set_level(spdlog::level::off), true);  // guest-fault warnings slow fuzzing
    (void)quiet;
    struct Header {
        uint8_t log2_size;
        uint8_t features;
        uint16_t desc_page, avail_page, used_page;  // in units of 16 bytes, wrapped into 0x10000
        uint16_t next_avail;
    } header;
    if (size < sizeof header) return 0;
    std::memcpy(&header, data, sizeof header);
    data += sizeof header;
    size -= sizeof header;

    // Two regions with a hole between them, so chains may straddle or miss RAM.
    HeapMemory memory({{GuestAddress(0), 0x8000}, {GuestAddress(0x9000), 0x8000}});
    size_t first = std::min<size_t>(size, 0x8000);
    memory.write(GuestAddress(0), std::as_bytes(std::span(data, first)));
    memory.write(GuestAddress(0x9000), std::as_bytes(std::span(data + first, std::min<size_t>(size - first, 0x8000))));

    QueueConfig config{static_cast<uint16_t>(1u << (header.log2_size % 10)), true,
                       GuestAddress(uint64_t{header.desc_page} % 0x1000 * 16),
                       GuestAddress(uint64_t{header.avail_page} % 0x1000 * 16),
                       GuestAddress(uint64_t{header.used_page} % 0x1000 * 16)};
    uint64_t features = virtio::kFeatureVersion1 | (header.features & 1 ? virtio::kFeatureEventIdx : 0) |
                        (header.features & 2 ? virtio::kFeatureIndirectDesc : 0);
    auto queue = Queue::create(memory, config, 32768, features);
    if (!queue) return 0;
    queue->set_next_avail(header.next_avail);

    std::vector<std::byte> scratch(4096);
    // A pass serves at most a queue's worth, as the devices do (ServedQueue::budget()).
    for (int budget = queue->size(); budget > 0; --budget) {
        auto chain = queue->pop();
        if (!chain) break;
        uint32_t written = 0;
        if (auto buffers = chain->collect()) {
            // One piece each way, then skip the rest: a chain may legitimately be up to kMaxChainBytes long,
            // and copying all of it for every input would starve the fuzzer.
            ChainReader reader(memory, buffers->readable);
            (void)reader.read(std::span(scratch).first(std::min<uint64_t>(reader.remaining(), scratch.size())));
            (void)reader.skip(reader.remaining());
            ChainWriter writer(memory, buffers->writable);
            (void)writer.write(std::span(scratch).first(std::min<uint64_t>(writer.remaining(), scratch.size())));
            (void)writer.skip(writer.remaining());
            written = static_cast<uint32_t>(writer.written());
        }
        (void)queue->add_used(chain->head(), written);
    }
    (void)queue->should_notify();
    return 0;
}
