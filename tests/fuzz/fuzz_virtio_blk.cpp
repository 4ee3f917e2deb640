// Fuzzer bytes become the guest memory holding a virtio-blk request queue (fixed ring addresses) and
// its requests, served against a small temporary image with the synchronous engine.
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/asio_loop.h"
#include <cstddef>
#include <cstdint>
#include <vector>

#include "devices/virtio/block.h"
#include "devices/virtio/spec.h"
#include "memory/heap_memory.h"

#include <spdlog/spdlog.h>

using namespace kite;

namespace {

class NullInterrupt : public VirtioInterrupt {
public:
    void signal_used_queue(uint16_t) override {}
    void signal_config_change() override {}
    void needs_reset() override {}
};

const std::string& image_path() {
    static const std::string path = [] {
        char name[] = "/tmp/kite-fuzz-blk-XXXXXX";
        int fd = ::mkstemp(name);
        [[maybe_unused]] int r = ::ftruncate(fd, 64 * 512);
        ::close(fd);
        return std::string(name);
    }();
    return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const bool quiet = (spdlog::set_level(spdlog::level::off), true);  // guest-fault warnings slow fuzzing
    (void)quiet;
    static auto device = *BlockDevice::open({image_path(), false, "fuzz", false});
    constexpr uint64_t kMemory = 0x10000;
    HeapMemory memory(kMemory);
    memory.write(GuestAddress(0), std::as_bytes(std::span(data, std::min<size_t>(size, kMemory))));

    asio::io_context io;
    NullInterrupt interrupt;
    int kick = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    // desc table at 0 (16 x 16 bytes), avail ring at 0x100, used ring at 0x200.
    QueueConfig queue{16, true, GuestAddress(0), GuestAddress(0x100), GuestAddress(0x200)};
    // activate() serves every request already in the avail ring.
    (void)device->activate(ActivateContext{memory, {queue}, {BorrowedFd(kick)}, {}, interrupt, io,
                                           virtio::kCommonFeatures | (1ull << 13) | (1ull << 14)});
    io.poll();
    device->reset();
    ::close(kick);
    return 0;
}
