#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "memory/heap_memory.h"
#include "tests/unit/boot/test_images.h"
#include "vmm/arch/x86_64/boot/boot_params.h"
#include "vmm/arch/x86_64/boot/cpu_setup.h"
#include "vmm/arch/x86_64/boot/pvh.h"
#include "vmm/arch/x86_64/boot/x86_boot.h"

using namespace kite;
using namespace kite::boot;
using namespace kite::boot::test;

namespace {

constexpr uint64_t kRam = 64 * MiB;

BootInputs inputs(std::span<const std::byte> kernel, std::string cmdline = "console=ttyS0") {
    BootInputs in;
    in.kernel = kernel;
    in.cmdline = std::move(cmdline);
    in.ram = {{GuestAddress(0), kRam}};
    return in;
}

// Fields of the packed boot_params cannot bind to doctest's references: copy them out.
template <class T>
T val(T value) {
    return value;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string read_cstring(GuestMemory& mem, uint64_t addr, size_t max) {
    std::vector<char> buf(max);
    REQUIRE(mem.read(GuestAddress(addr), std::as_writable_bytes(std::span(buf))).has_value());
    return std::string(buf.data(), strnlen(buf.data(), max));
}

// A descriptor from the GDT in guest memory, decoded independently of cpu_setup's encoder.
BootState::Segment decode_gdt(GuestMemory& mem, uint16_t selector) {
    uint64_t d = *mem.read_obj<uint64_t>(GuestAddress(kGdtAddr + selector));
    BootState::Segment s;
    s.base = ((d >> 16) & 0xffffff) | ((d >> 56) & 0xff) << 24;
    s.g = (d >> 55) & 1;
    uint32_t raw_limit = static_cast<uint32_t>((d & 0xffff) | ((d >> 48) & 0xf) << 16);
    s.limit = s.g ? (raw_limit << 12) | 0xfff : raw_limit;
    s.type = (d >> 40) & 0xf;
    s.s = (d >> 44) & 1;
    s.dpl = (d >> 45) & 3;
    s.present = (d >> 47) & 1;
    s.l = (d >> 53) & 1;
    s.db = (d >> 54) & 1;
    s.selector = selector;
    return s;
}

void check_same_segment(const BootState::Segment& a, const BootState::Segment& b) {
    CHECK(a.base == b.base);
    CHECK(a.limit == b.limit);
    CHECK(a.selector == b.selector);
    CHECK(a.type == b.type);
    CHECK(a.present == b.present);
    CHECK(a.dpl == b.dpl);
    CHECK(a.db == b.db);
    CHECK(a.s == b.s);
    CHECK(a.l == b.l);
    CHECK(a.g == b.g);
}

std::vector<std::byte> initrd_bytes(size_t size) {
    std::vector<std::byte> bytes(size);
    for (size_t i = 0; i < size; ++i) bytes[i] = pattern(i + 11);
    return bytes;
}

// A file under the test's temp dir, removed when the test ends.
struct TempFile {
    std::filesystem::path path;
    explicit TempFile(std::span<const std::byte> bytes)
        : path(std::filesystem::temp_directory_path() / ("kite-boot-test-" + std::to_string(::getpid()) + "-" +
                                                          std::to_string(counter()++))) {
        std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    }
    ~TempFile() { std::filesystem::remove(path); }
    static int& counter() {
        static int n = 0;
        return n;
    }
};

}  // namespace

TEST_CASE("bzImage boot enters the 64-bit entry in long mode with rsi at the zero page") {
    auto image = make_bzimage({.pref_address = 16 * MiB});
    HeapMemory mem(kRam);

    auto state = load_linux(mem, inputs(image));

    REQUIRE(state.has_value());
    CHECK(state->mode == BootState::Long64);
    CHECK(state->rip == 16 * MiB + 0x200);
    CHECK(state->rsi == kZeroPageAddr);
    CHECK(state->kernel_load.value() == 16 * MiB);
    CHECK(state->cr0 == (kCr0Pe | kCr0Et | kCr0Pg));
    CHECK(state->cr3 == kPml4Addr);
    CHECK(state->cr4 == kCr4Pae);
    CHECK(state->efer == (kEferLme | kEferLma));
    CHECK(state->rflags == 0x2);
    CHECK(state->cs.selector == 0x10);
    CHECK(state->cs.l == 1);
    CHECK(state->cs.db == 0);
    CHECK(state->ds.selector == 0x18);
    CHECK(state->ss.selector == 0x18);
    CHECK(mem.read_obj<std::byte>(GuestAddress(16 * MiB)) == pattern(0));
}

TEST_CASE("bzImage boot fills the zero page loader fields") {
    auto image = make_bzimage({.version = 0x020f, .cmdline_size = 255});
    HeapMemory mem(kRam);
    auto in = inputs(image, "console=ttyS0 root=/dev/vda");
    in.rsdp = GuestAddress(0xe0000);

    auto state = load_linux(mem, in);

    REQUIRE(state.has_value());
    auto bp = *mem.read_obj<boot_params>(GuestAddress(kZeroPageAddr));
    CHECK(val(bp.hdr.type_of_loader) == 0xff);
    CHECK(val(bp.hdr.cmd_line_ptr) == kCmdlineAddr);
    CHECK(val(bp.ext_cmd_line_ptr) == 0);
    CHECK(val(bp.hdr.header) == 0x53726448);
    CHECK(val(bp.hdr.version) == 0x020f);
    CHECK(val(bp.hdr.loadflags) == (LOADED_HIGH | CAN_USE_HEAP));
    CHECK(val(bp.hdr.heap_end_ptr) == 0xfe00);
    CHECK(val(bp.hdr.vid_mode) == 0xffff);
    CHECK(val(bp.hdr.code32_start) == 16 * MiB);
    CHECK(val(bp.hdr.ramdisk_image) == 0);
    CHECK(val(bp.hdr.ramdisk_size) == 0);
    CHECK(val(bp.acpi_rsdp_addr) == 0xe0000);
    CHECK(read_cstring(mem, kCmdlineAddr, 256) == "console=ttyS0 root=/dev/vda");
    CHECK(state->cmdline_addr.value() == kCmdlineAddr);
}

TEST_CASE("bzImage zero page carries the e820 map of guest RAM") {
    auto image = make_bzimage({});
    HeapMemory mem(kRam);

    REQUIRE(load_linux(mem, inputs(image)).has_value());

    auto bp = *mem.read_obj<boot_params>(GuestAddress(kZeroPageAddr));
    REQUIRE(val(bp.e820_entries) == 3);
    CHECK(val(bp.e820_table[0].addr) == 0);
    CHECK(val(bp.e820_table[0].size) == 0x9fc00);
    CHECK(val(bp.e820_table[0].type) == kE820Ram);
    CHECK(val(bp.e820_table[1].addr) == 0x9fc00);
    CHECK(val(bp.e820_table[1].type) == kE820Reserved);
    CHECK(val(bp.e820_table[2].addr) == 1 * MiB);
    CHECK(val(bp.e820_table[2].size) == kRam - 1 * MiB);
    CHECK(val(bp.e820_table[2].type) == kE820Ram);
}

TEST_CASE("protocol 2.12 kernel gets no acpi_rsdp_addr, which it would not read") {
    auto image = make_bzimage({.version = 0x020c});
    HeapMemory mem(kRam);
    auto in = inputs(image);
    in.rsdp = GuestAddress(0xe0000);

    REQUIRE(load_linux(mem, in).has_value());

    CHECK(val(mem.read_obj<boot_params>(GuestAddress(kZeroPageAddr))->acpi_rsdp_addr) == 0u);
}

TEST_CASE("initrd goes to the highest page-aligned address below the end of RAM") {
    auto image = make_bzimage({});
    auto initrd = initrd_bytes(0x1234);
    HeapMemory mem(kRam);
    auto in = inputs(image);
    in.initrd = std::span<const std::byte>(initrd);

    auto state = load_linux(mem, in);

    REQUIRE(state.has_value());
    uint64_t expected = (kRam - 0x1234) & ~uint64_t{0xfff};
    CHECK(state->initrd_load.value() == expected);
    CHECK(state->initrd_size == 0x1234);
    auto bp = *mem.read_obj<boot_params>(GuestAddress(kZeroPageAddr));
    CHECK(val(bp.hdr.ramdisk_image) == expected);
    CHECK(val(bp.hdr.ramdisk_size) == 0x1234);
    CHECK(val(bp.ext_ramdisk_image) == 0);
    CHECK(val(bp.ext_ramdisk_size) == 0);
    std::vector<std::byte> copied(0x1234);
    REQUIRE(mem.read(GuestAddress(expected), copied).has_value());
    CHECK(copied == initrd);
}

TEST_CASE("initrd stays below initrd_addr_max") {
    auto image = make_bzimage({.initrd_addr_max = 32 * MiB - 1});
    auto initrd = initrd_bytes(0x1800);
    HeapMemory mem(kRam);
    auto in = inputs(image);
    in.initrd = std::span<const std::byte>(initrd);

    auto state = load_linux(mem, in);

    REQUIRE(state.has_value());
    CHECK(state->initrd_load.value() == 32 * MiB - 0x2000);
}

TEST_CASE("initrd goes below a kernel that sits at the top of RAM") {
    auto image = make_bzimage({.init_size = 4 * MiB, .pref_address = 60 * MiB});
    auto initrd = initrd_bytes(0x1000);
    HeapMemory mem(kRam);
    auto in = inputs(image);
    in.initrd = std::span<const std::byte>(initrd);

    auto state = load_linux(mem, in);

    REQUIRE(state.has_value());
    CHECK(state->kernel_load.value() == 60 * MiB);
    CHECK(state->initrd_load.value() == 60 * MiB - 0x1000);
}

TEST_CASE("initrd larger than free RAM is an error") {
    auto image = make_bzimage({});
    std::vector<std::byte> initrd(kRam - 2 * MiB);
    HeapMemory mem(kRam);
    auto in = inputs(image);
    in.initrd = std::span<const std::byte>(initrd);

    auto state = load_linux(mem, in);

    REQUIRE_FALSE(state.has_value());
    CHECK(contains(state.error().message, "do not fit"));
}

TEST_CASE("command line of exactly cmdline_size bytes is accepted") {
    auto image = make_bzimage({.cmdline_size = 64});
    HeapMemory mem(kRam);

    auto state = load_linux(mem, inputs(image, std::string(64, 'a')));

    REQUIRE(state.has_value());
    CHECK(read_cstring(mem, kCmdlineAddr, 100) == std::string(64, 'a'));
}

TEST_CASE("command line longer than cmdline_size is an error") {
    auto image = make_bzimage({.cmdline_size = 64});
    HeapMemory mem(kRam);

    auto state = load_linux(mem, inputs(image, std::string(65, 'a')));

    REQUIRE_FALSE(state.has_value());
    CHECK(contains(state.error().message, "at most 64"));
}

TEST_CASE("64-bit page tables identity-map the first 4 GiB with 2 MiB pages") {
    auto image = make_bzimage({});
    HeapMemory mem(kRam);

    REQUIRE(load_linux(mem, inputs(image)).has_value());

    CHECK(mem.read_obj<uint64_t>(GuestAddress(kPml4Addr)) == (kPdptAddr | 0x3));
    CHECK(mem.read_obj<uint64_t>(GuestAddress(kPml4Addr + 8)) == 0u);
    CHECK(mem.read_obj<uint64_t>(GuestAddress(kPdptAddr)) == (kPdAddr | 0x3));
    CHECK(mem.read_obj<uint64_t>(GuestAddress(kPdptAddr + 3 * 8)) == ((kPdAddr + 0x3000) | 0x3));
    CHECK(mem.read_obj<uint64_t>(GuestAddress(kPdptAddr + 4 * 8)) == 0u);
    CHECK(mem.read_obj<uint64_t>(GuestAddress(kPdAddr)) == 0x83u);
    CHECK(mem.read_obj<uint64_t>(GuestAddress(kPdAddr + 8)) == (2 * MiB | 0x83));
    CHECK(mem.read_obj<uint64_t>(GuestAddress(kPdAddr + 0x3000 + 511 * 8)) == (0xffe00000u | 0x83));
}

TEST_CASE("GDT in memory matches the long-mode segment registers") {
    auto image = make_bzimage({});
    HeapMemory mem(kRam);

    auto state = load_linux(mem, inputs(image));

    REQUIRE(state.has_value());
    CHECK(state->gdt_base == kGdtAddr);
    CHECK(state->gdt_limit == 31);
    CHECK(state->idt_base == kIdtAddr);
    CHECK(mem.read_obj<uint64_t>(GuestAddress(kGdtAddr)) == 0u);
    check_same_segment(decode_gdt(mem, state->cs.selector), state->cs);
    check_same_segment(decode_gdt(mem, state->ds.selector), state->ds);
    check_same_segment(decode_gdt(mem, state->ss.selector), state->ss);
    CHECK(mem.read_obj<uint64_t>(GuestAddress(kGdtAddr + 0x10)) == 0x00af9b000000ffffu);
}

TEST_CASE("PVH boot enters the note's entry in 32-bit protected mode with ebx at start_info") {
    auto image = make_pvh_elf({.entry = 1 * MiB + 0x40});
    HeapMemory mem(kRam);

    auto state = load_linux(mem, inputs(image));

    REQUIRE(state.has_value());
    CHECK(state->mode == BootState::Pvh32);
    CHECK(state->rip == 1 * MiB + 0x40);
    CHECK(state->rbx == kPvhStartInfoAddr);
    CHECK(state->cr0 == (kCr0Pe | kCr0Et));
    CHECK(state->cr4 == 0u);
    CHECK(state->efer == 0u);
    CHECK(state->cs.selector == 0x10);
    CHECK(state->cs.db == 1);
    CHECK(state->cs.l == 0);
    CHECK(state->cs.limit == 0xffffffffu);
    check_same_segment(decode_gdt(mem, state->cs.selector), state->cs);
    check_same_segment(decode_gdt(mem, state->ds.selector), state->ds);
    CHECK(mem.read_obj<uint64_t>(GuestAddress(kGdtAddr + 0x10)) == 0x00cf9b000000ffffu);
}

TEST_CASE("PVH start_info carries magic, command line, initrd module, memory map and RSDP") {
    auto image = make_pvh_elf({});
    auto initrd = initrd_bytes(0x2345);
    HeapMemory mem(kRam);
    auto in = inputs(image, "console=hvc0");
    in.initrd = std::span<const std::byte>(initrd);
    in.rsdp = GuestAddress(0xe0000);

    auto state = load_linux(mem, in);

    REQUIRE(state.has_value());
    auto info = *mem.read_obj<HvmStartInfo>(GuestAddress(kPvhStartInfoAddr));
    CHECK(info.magic == 0x336ec578u);
    CHECK(info.version == 1u);
    CHECK(info.cmdline_paddr == kCmdlineAddr);
    CHECK(info.rsdp_paddr == 0xe0000u);
    CHECK(read_cstring(mem, info.cmdline_paddr, 64) == "console=hvc0");
    REQUIRE(info.nr_modules == 1u);
    auto mod = *mem.read_obj<HvmModlistEntry>(GuestAddress(info.modlist_paddr));
    CHECK(mod.paddr == ((kRam - 0x2345) & ~uint64_t{0xfff}));
    CHECK(mod.size == 0x2345u);
    CHECK(mod.paddr == state->initrd_load.value());
    REQUIRE(info.memmap_entries == 3u);
    auto last = *mem.read_obj<HvmMemmapEntry>(GuestAddress(info.memmap_paddr + 2 * sizeof(HvmMemmapEntry)));
    CHECK(last.addr == 1 * MiB);
    CHECK(last.size == kRam - 1 * MiB);
    CHECK(last.type == kE820Ram);
}

TEST_CASE("PVH boot without initrd lists no modules") {
    auto image = make_pvh_elf({});
    HeapMemory mem(kRam);

    REQUIRE(load_linux(mem, inputs(image)).has_value());

    auto info = *mem.read_obj<HvmStartInfo>(GuestAddress(kPvhStartInfoAddr));
    CHECK(info.nr_modules == 0u);
    CHECK(info.modlist_paddr == 0u);
}

TEST_CASE("PVH initrd does not overlap the kernel segments") {
    auto image = make_pvh_elf({.segments = {{60 * MiB, 0x1000, 4 * MiB}}, .entry = 60 * MiB});
    auto initrd = initrd_bytes(0x1000);
    HeapMemory mem(kRam);
    auto in = inputs(image);
    in.initrd = std::span<const std::byte>(initrd);

    auto state = load_linux(mem, in);

    REQUIRE(state.has_value());
    CHECK(state->initrd_load.value() == 60 * MiB - 0x1000);
}

TEST_CASE("Auto protocol on bytes that are neither bzImage nor ELF is an error") {
    std::vector<std::byte> junk(4096, std::byte{0x90});
    HeapMemory mem(kRam);

    auto state = load_linux(mem, inputs(junk));

    REQUIRE_FALSE(state.has_value());
    CHECK(contains(state.error().message, "neither a bzImage"));
}

TEST_CASE("forcing the bzImage protocol on an ELF image is an error") {
    auto image = make_pvh_elf({});
    HeapMemory mem(kRam);
    auto in = inputs(image);
    in.protocol = BootProtocol::BzImage;

    auto state = load_linux(mem, in);

    REQUIRE_FALSE(state.has_value());
    CHECK(contains(state.error().message, "magic"));
}

TEST_CASE("kernel given as a file path is read and booted") {
    auto image = make_bzimage({});
    TempFile file(image);
    HeapMemory mem(kRam);
    auto in = inputs({});
    in.kernel = file.path;

    auto state = load_linux(mem, in);

    REQUIRE(state.has_value());
    CHECK(state->mode == BootState::Long64);
}

TEST_CASE("missing kernel file is an error naming the path") {
    HeapMemory mem(kRam);
    auto in = inputs({});
    in.kernel = std::filesystem::path("/nonexistent/kite/vmlinuz");

    auto state = load_linux(mem, in);

    REQUIRE_FALSE(state.has_value());
    CHECK(contains(state.error().message, "kernel image /nonexistent/kite/vmlinuz"));
    CHECK(contains(state.error().message, "No such file"));
}

TEST_CASE("empty kernel file is an error") {
    TempFile file({});
    HeapMemory mem(kRam);
    auto in = inputs({});
    in.kernel = file.path;

    auto state = load_linux(mem, in);

    REQUIRE_FALSE(state.has_value());
    CHECK(contains(state.error().message, "empty"));
}

TEST_CASE("kernel path that is a directory is an error") {
    HeapMemory mem(kRam);
    auto in = inputs({});
    in.kernel = std::filesystem::temp_directory_path();

    auto state = load_linux(mem, in);

    REQUIRE_FALSE(state.has_value());
    CHECK(contains(state.error().message, "not a regular file"));
}

TEST_CASE("initrd given as a file path is copied into guest RAM") {
    auto image = make_bzimage({});
    auto initrd = initrd_bytes(0x3000);
    TempFile file(initrd);
    HeapMemory mem(kRam);
    auto in = inputs(image);
    in.initrd = file.path;

    auto state = load_linux(mem, in);

    REQUIRE(state.has_value());
    std::vector<std::byte> copied(0x3000);
    REQUIRE(mem.read(state->initrd_load, copied).has_value());
    CHECK(copied == initrd);
}

TEST_CASE("missing initrd file is an error naming the path") {
    auto image = make_bzimage({});
    HeapMemory mem(kRam);
    auto in = inputs(image);
    in.initrd = std::filesystem::path("/nonexistent/initrd.img");

    auto state = load_linux(mem, in);

    REQUIRE_FALSE(state.has_value());
    CHECK(contains(state.error().message, "initrd /nonexistent/initrd.img"));
}

TEST_CASE("bzImage kernel over a reserved range is an error") {
    auto image = make_bzimage({.init_size = 4 * MiB, .pref_address = 16 * MiB});
    HeapMemory mem(kRam);
    auto in = inputs(image);
    in.reserved = {{GuestAddress(18 * MiB), 4096}};

    auto state = load_linux(mem, in);

    REQUIRE_FALSE(state.has_value());
    CHECK(contains(state.error().message, "overlaps the reserved range"));
}

TEST_CASE("PVH segment over a reserved range is an error") {
    auto image = make_pvh_elf({});
    HeapMemory mem(kRam);
    auto in = inputs(image);
    in.reserved = {{GuestAddress(1 * MiB), 4096}};

    auto state = load_linux(mem, in);

    REQUIRE_FALSE(state.has_value());
    CHECK(contains(state.error().message, "overlaps the reserved range"));
}

TEST_CASE("initrd is placed below a reserved range at the top of RAM") {
    auto image = make_bzimage({});
    auto initrd = initrd_bytes(0x1000);
    HeapMemory mem(kRam);
    auto in = inputs(image);
    in.initrd = std::span<const std::byte>(initrd);
    in.reserved = {{GuestAddress(kRam - 1 * MiB), 1 * MiB}};

    auto state = load_linux(mem, in);

    REQUIRE(state.has_value());
    CHECK(state->initrd_load.value() == kRam - 1 * MiB - 0x1000);
}

TEST_CASE("boot without RAM ranges is an error") {
    auto image = make_bzimage({});
    HeapMemory mem(kRam);
    auto in = inputs(image);
    in.ram.clear();

    auto state = load_linux(mem, in);

    REQUIRE_FALSE(state.has_value());
    CHECK(contains(state.error().message, "no guest RAM"));
}
