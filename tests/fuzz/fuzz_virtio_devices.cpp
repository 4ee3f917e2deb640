// Fuzzer bytes become a sequence of register accesses (offset, width, value) against a virtio-mmio
// transport with a virtio-rng device, with the VMM loop run between accesses so activations and resets
// happen. The first 4 KiB of input also seed guest memory, where the queues may point.
#include "base/asio_loop.h"
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "devices/virtio/mmio_transport.h"
#include "devices/virtio/rng.h"
#include "memory/heap_memory.h"

#include <spdlog/spdlog.h>

using namespace kite;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const bool quiet = (spdlog::set_level(spdlog::level::off), true);  // guest-fault warnings slow fuzzing
    (void)quiet;
    HeapMemory memory(0x10000);
    memory.write(GuestAddress(0), std::as_bytes(std::span(data, std::min<size_t>(size, 4096))));
    asio::io_context io;
    auto transport = *VirtioMmioTransport::create(std::make_shared<RngDevice>(), memory, io);

    struct Access {
        uint8_t kind;  // bit 0: write; bits 1-2: width 1, 2, 4, 8
        uint8_t offset;  // register / 4, so the whole 0x000-0x3fc range is reachable
        uint8_t value[8];
    } access;
    for (size_t at = 0; at + sizeof access <= size; at += sizeof access) {
        std::memcpy(&access, data + at, sizeof access);
        size_t width = size_t{1} << ((access.kind >> 1) & 3);
        uint64_t offset = uint64_t{access.offset} * 4;
        if (access.kind & 1) {
            transport->write(offset, std::span<const uint8_t>(access.value, width));
        } else {
            transport->read(offset, std::span<uint8_t>(access.value, width));
        }
        io.restart();
        io.poll();
    }
    transport->write(0x70, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>("\0\0\0\0"), 4));
    io.restart();
    io.poll();
    return 0;
}
