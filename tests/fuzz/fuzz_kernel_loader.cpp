// Fuzz target: arbitrary bytes as the kernel image (and, split off the end, as the initrd) for every
// protocol choice. The loader must answer with a BootState or an error, never crash or read out of
// bounds. The first byte picks the protocol and whether an initrd is passed.
#include <cstddef>
#include <cstdint>
#include <span>

#include "memory/heap_memory.h"
#include "vmm/arch/x86_64/boot/x86_boot.h"

using namespace kite;
using namespace kite::boot;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static HeapMemory mem(8 << 20);  // small RAM so placement failures are reachable too
    if (size < 1) return 0;
    uint8_t control = data[0];
    auto bytes = std::as_bytes(std::span(data + 1, size - 1));

    BootInputs in;
    in.ram = {{GuestAddress(0), 8 << 20}};
    in.cmdline = "console=ttyS0";
    in.rsdp = GuestAddress(0xe0000);
    const BootProtocol protocols[] = {BootProtocol::Auto, BootProtocol::BzImage, BootProtocol::Pvh};
    in.protocol = protocols[(control & 3) % 3];
    size_t initrd_size = (control & 4) ? std::min<size_t>(bytes.size() / 4, 4096) : 0;
    in.kernel = bytes.first(bytes.size() - initrd_size);
    if (initrd_size) in.initrd = bytes.last(initrd_size);

    auto state = load_linux(mem, in);
    if (state) {
        // A successful load must describe memory the loader actually placed inside RAM.
        if (!mem.contains(state->kernel_load, 1)) __builtin_trap();
        if (state->initrd_size && !mem.contains(state->initrd_load, state->initrd_size)) __builtin_trap();
    }
    return 0;
}
