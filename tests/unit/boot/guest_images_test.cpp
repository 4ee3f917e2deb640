// Loads the freestanding test guests built by tests/guest/ with the real loader: proves their headers
// and notes are what the loader accepts and that their entry points land where the guests expect.
#include <doctest/doctest.h>

#include <elf.h>

#include <cstring>
#include <string>

#include "memory/heap_memory.h"
#include "vmm/arch/x86_64/boot/image_file.h"
#include "vmm/arch/x86_64/boot/x86_boot.h"

using namespace kite;
using namespace kite::boot;

namespace {

constexpr uint64_t kRam = 64 << 20;
const std::string kGuestDir = KITE_GUEST_IMAGE_DIR;

BootInputs guest_inputs(const std::string& image) {
    BootInputs in;
    in.kernel = std::filesystem::path(kGuestDir + "/" + image);
    in.cmdline = "kite_test=hello kite_ram_mb=64";
    in.ram = {{GuestAddress(0), kRam}};
    return in;
}

}  // namespace

TEST_CASE("PVH test guest loads and enters at its ELF entry symbol through the Xen note") {
    auto file = read_whole_image(kGuestDir + "/pvh-guest.elf", "guest");
    REQUIRE(file.has_value());
    Elf64_Ehdr ehdr;
    std::memcpy(&ehdr, file->data(), sizeof ehdr);
    HeapMemory mem(kRam);

    auto state = load_linux(mem, guest_inputs("pvh-guest.elf"));

    REQUIRE(state.has_value());
    CHECK(state->mode == BootState::Pvh32);
    CHECK(state->rip == ehdr.e_entry);
    CHECK(state->kernel_load.value() == 0x100000);
    // pvh_start begins with "mov %ebx, entry_info" (opcode 0x89, modrm 0x1d: absolute disp32).
    CHECK(mem.read_obj<uint8_t>(GuestAddress(state->rip)) == 0x89);
    CHECK(mem.read_obj<uint8_t>(GuestAddress(state->rip + 1)) == 0x1d);
}

TEST_CASE("bzImage test guest loads at its pref_address and enters startup_64 at +0x200") {
    HeapMemory mem(kRam);

    auto state = load_linux(mem, guest_inputs("bzimage-guest"));

    REQUIRE(state.has_value());
    CHECK(state->mode == BootState::Long64);
    CHECK(state->kernel_load.value() == 0x1000000);
    CHECK(state->rip == 0x1000200);
    CHECK(mem.read_obj<uint8_t>(GuestAddress(0x1000000)) == 0xf4);  // the absent 32-bit entry: hlt
    // startup_64 begins with "lea stack_top(%rip), %rsp" (48 8d 25).
    CHECK(mem.read_obj<uint8_t>(GuestAddress(state->rip)) == 0x48);
    CHECK(mem.read_obj<uint8_t>(GuestAddress(state->rip + 1)) == 0x8d);
    CHECK(mem.read_obj<uint8_t>(GuestAddress(state->rip + 2)) == 0x25);
}
