#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "memory/heap_memory.h"
#include "tests/unit/boot/test_images.h"
#include "vmm/arch/x86_64/boot/elf_pvh.h"

using namespace kite;
using namespace kite::boot;
using namespace kite::boot::test;

namespace {

std::string parse_error(const std::vector<std::byte>& image) {
    auto parsed = parse_pvh_elf(image);
    REQUIRE_FALSE(parsed.has_value());
    return parsed.error().message;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Field offsets inside Elf64_Phdr.
constexpr size_t kPhOffset = offsetof(Elf64_Phdr, p_offset);
constexpr size_t kPhPaddr = offsetof(Elf64_Phdr, p_paddr);
constexpr size_t kPhFilesz = offsetof(Elf64_Phdr, p_filesz);
constexpr size_t kPhMemsz = offsetof(Elf64_Phdr, p_memsz);

// The same image as ELF32 for i386 (what a 32-bit PVH kernel is): the 64-bit ELF and program headers
// rewritten in their 32-bit form in place (they are smaller, so the notes and segment bytes keep their
// offsets).
std::vector<std::byte> as_elf32(const std::vector<std::byte>& elf64) {
    std::vector<std::byte> out = elf64;
    Elf64_Ehdr eh;
    std::memcpy(&eh, elf64.data(), sizeof eh);
    Elf32_Ehdr eh32{};
    std::memcpy(eh32.e_ident, eh.e_ident, EI_NIDENT);
    eh32.e_ident[EI_CLASS] = ELFCLASS32;
    eh32.e_type = eh.e_type;
    eh32.e_machine = EM_386;
    eh32.e_version = eh.e_version;
    eh32.e_entry = 0xc1000000;
    eh32.e_phoff = sizeof(Elf32_Ehdr);
    eh32.e_ehsize = sizeof(Elf32_Ehdr);
    eh32.e_phentsize = sizeof(Elf32_Phdr);
    eh32.e_phnum = eh.e_phnum;
    std::fill(out.begin(), out.begin() + static_cast<ptrdiff_t>(phdr_offset(eh.e_phnum)), std::byte{0});
    put(out, 0, eh32);
    for (size_t i = 0; i < eh.e_phnum; ++i) {
        Elf64_Phdr ph;
        std::memcpy(&ph, elf64.data() + phdr_offset(i), sizeof ph);
        Elf32_Phdr ph32{};
        ph32.p_type = ph.p_type;
        ph32.p_offset = static_cast<Elf32_Off>(ph.p_offset);
        ph32.p_vaddr = static_cast<Elf32_Addr>(ph.p_paddr + 0xc0000000);
        ph32.p_paddr = static_cast<Elf32_Addr>(ph.p_paddr);
        ph32.p_filesz = static_cast<Elf32_Word>(ph.p_filesz);
        ph32.p_memsz = static_cast<Elf32_Word>(ph.p_memsz);
        ph32.p_flags = ph.p_flags;
        ph32.p_align = static_cast<Elf32_Word>(ph.p_align);
        put(out, sizeof(Elf32_Ehdr) + i * sizeof(Elf32_Phdr), ph32);
    }
    return out;
}

size_t phdr32_offset(size_t index) { return sizeof(Elf32_Ehdr) + index * sizeof(Elf32_Phdr); }

}  // namespace

TEST_CASE("PVH ELF parses its segments and the 32-bit entry from the Xen note") {
    ElfSpec spec{.segments = {{1 * MiB, 0x2000, 0x3000}, {2 * MiB, 0x100, 0x100}}, .entry = 1 * MiB + 0x40};
    auto image = make_pvh_elf(spec);

    auto elf = parse_pvh_elf(image);

    REQUIRE(elf.has_value());
    CHECK(elf->entry.value() == 1 * MiB + 0x40);
    REQUIRE(elf->segments.size() == 2);
    CHECK(elf->segments[0].paddr.value() == 1 * MiB);
    CHECK(elf->segments[0].file_size == 0x2000);
    CHECK(elf->segments[0].mem_size == 0x3000);
    CHECK(elf->segments[1].paddr.value() == 2 * MiB);
}

TEST_CASE("PVH note with a 64-bit value is accepted") {
    auto image = make_pvh_elf({.entry = 1 * MiB + 0x80, .entry_size = 8});

    auto elf = parse_pvh_elf(image);

    REQUIRE(elf.has_value());
    CHECK(elf->entry.value() == 1 * MiB + 0x80);
}

TEST_CASE("load_pvh_elf copies file bytes to p_paddr and zeroes the bss") {
    auto image = make_pvh_elf({.segments = {{1 * MiB, 0x2000, 0x3000}}});
    auto elf = parse_pvh_elf(image);
    REQUIRE(elf.has_value());
    HeapMemory mem(8 * MiB);
    std::vector<std::byte> junk(0x3000, std::byte{0xff});
    REQUIRE(mem.write(GuestAddress(1 * MiB), junk).has_value());

    auto ok = load_pvh_elf(mem, *elf);

    REQUIRE(ok.has_value());
    CHECK(mem.read_obj<std::byte>(GuestAddress(1 * MiB)) == pattern(0));
    CHECK(mem.read_obj<std::byte>(GuestAddress(1 * MiB + 0x1fff)) == pattern(0x1fff));
    CHECK(mem.read_obj<std::byte>(GuestAddress(1 * MiB + 0x2000)) == std::byte{0});
    CHECK(mem.read_obj<std::byte>(GuestAddress(1 * MiB + 0x2fff)) == std::byte{0});
}

TEST_CASE("ELF shorter than its header is an error") {
    auto image = make_pvh_elf({});
    image.resize(40);

    CHECK(contains(parse_error(image), "truncated"));
}

TEST_CASE("ELF of an unknown class is an error") {
    auto image = make_pvh_elf({});
    put<uint8_t>(image, EI_CLASS, ELFCLASSNONE);

    CHECK(contains(parse_error(image), "neither a 32- nor a 64-bit ELF"));
}

TEST_CASE("ELF for another machine is an error") {
    auto image = make_pvh_elf({});
    put<uint16_t>(image, offsetof(Elf64_Ehdr, e_machine), EM_AARCH64);

    CHECK(contains(parse_error(image), "not x86_64"));
}

TEST_CASE("program headers outside the file are an error") {
    auto image = make_pvh_elf({});
    put<uint64_t>(image, offsetof(Elf64_Ehdr, e_phoff), image.size() - 8);

    CHECK(contains(parse_error(image), "program headers"));
}

TEST_CASE("program header offset near 2^64 is an error, not a wrap") {
    auto image = make_pvh_elf({});
    put<uint64_t>(image, offsetof(Elf64_Ehdr, e_phoff), UINT64_MAX - 16);

    CHECK(contains(parse_error(image), "program headers"));
}

TEST_CASE("segment file range outside the file is an error") {
    auto image = make_pvh_elf({});
    put<uint64_t>(image, phdr_offset(1) + kPhOffset, UINT64_MAX - 0x10);

    CHECK(contains(parse_error(image), "outside the file"));
}

TEST_CASE("p_filesz larger than p_memsz is an error") {
    auto image = make_pvh_elf({});
    put<uint64_t>(image, phdr_offset(1) + kPhMemsz, 0x1000);

    CHECK(contains(parse_error(image), "larger than p_memsz"));
}

TEST_CASE("segment that wraps around the address space is an error") {
    auto image = make_pvh_elf({});
    put<uint64_t>(image, phdr_offset(1) + kPhPaddr, UINT64_MAX - 0x1000);

    CHECK(contains(parse_error(image), "wraps"));
}

TEST_CASE("segment below 1 MiB is an error") {
    auto image = make_pvh_elf({.segments = {{0x8000, 0x100, 0x100}}, .entry = 0x8000});

    CHECK(contains(parse_error(image), "below 1 MiB"));
}

TEST_CASE("overlapping segments are an error") {
    auto image = make_pvh_elf({.segments = {{1 * MiB, 0x2000, 0x3000}, {1 * MiB + 0x2000, 0x100, 0x100}}});

    CHECK(contains(parse_error(image), "overlaps"));
}

TEST_CASE("segment outside guest RAM fails to load") {
    auto image = make_pvh_elf({.segments = {{1 * MiB, 0x2000, 0x3000}, {64 * MiB, 0x100, 0x100}}});
    auto elf = parse_pvh_elf(image);
    REQUIRE(elf.has_value());
    HeapMemory mem(8 * MiB);

    auto ok = load_pvh_elf(mem, *elf);

    REQUIRE_FALSE(ok.has_value());
    CHECK(contains(ok.error().message, "outside guest RAM"));
}

TEST_CASE("note whose name runs past the PT_NOTE segment is an error") {
    ElfSpec spec{};
    auto image = make_pvh_elf(spec);
    put<uint32_t>(image, xen_note_offset(spec), 0x1000);  // namesz

    CHECK(contains(parse_error(image), "runs past"));
}

TEST_CASE("PT_NOTE segment cut in the middle of the Xen note is an error") {
    ElfSpec spec{};
    auto image = make_pvh_elf(spec);
    put<uint64_t>(image, phdr_offset(0) + kPhFilesz, 20 + 14);

    CHECK(contains(parse_error(image), "runs past"));
}

TEST_CASE("PVH note with a 2-byte value is an error") {
    ElfSpec spec{};
    auto image = make_pvh_elf(spec);
    put<uint32_t>(image, xen_note_offset(spec) + 4, 2);  // descsz

    CHECK(contains(parse_error(image), "2-byte value"));
}

TEST_CASE("ELF without a PVH note is an error") {
    ElfSpec spec{};
    auto image = make_pvh_elf(spec);
    put<uint32_t>(image, xen_note_offset(spec) + 8, 17);  // another Xen note type

    CHECK(contains(parse_error(image), "no PVH entry note"));
}

TEST_CASE("PVH entry outside every loaded segment is an error") {
    auto image = make_pvh_elf({.entry = 32 * MiB});

    CHECK(contains(parse_error(image), "not inside"));
}

TEST_CASE("a 32-bit i386 PVH ELF parses its segments and its entry") {
    ElfSpec spec{.segments = {{1 * MiB, 0x2000, 0x3000}, {2 * MiB, 0x100, 0x100}}, .entry = 1 * MiB + 0x40};
    auto image = as_elf32(make_pvh_elf(spec));

    auto elf = parse_pvh_elf(image);

    REQUIRE_MESSAGE(elf.has_value(), (elf ? "" : elf.error().message));
    CHECK(elf->entry.value() == 1 * MiB + 0x40);
    REQUIRE(elf->segments.size() == 2);
    CHECK(elf->segments[0].paddr.value() == 1 * MiB);
    CHECK(elf->segments[0].file_offset == make_pvh_elf(spec).size() - 0x2000 - 0x100);
    CHECK(elf->segments[0].file_size == 0x2000);
    CHECK(elf->segments[0].mem_size == 0x3000);
    CHECK(elf->segments[1].paddr.value() == 2 * MiB);
}

TEST_CASE("a 32-bit PVH ELF loads its bytes and zeroes its bss") {
    auto image = as_elf32(make_pvh_elf({.segments = {{1 * MiB, 0x2000, 0x3000}}}));
    auto elf = parse_pvh_elf(image);  // keeps a view of image
    REQUIRE(elf.has_value());
    HeapMemory mem(8 * MiB);
    std::vector<std::byte> junk(0x3000, std::byte{0xff});
    REQUIRE(mem.write(GuestAddress(1 * MiB), junk).has_value());

    auto ok = load_pvh_elf(mem, *elf);

    REQUIRE(ok.has_value());
    CHECK(mem.read_obj<std::byte>(GuestAddress(1 * MiB + 0x1fff)) == pattern(0x1fff));
    CHECK(mem.read_obj<std::byte>(GuestAddress(1 * MiB + 0x2000)) == std::byte{0});
}

TEST_CASE("a 32-bit ELF for x86_64 (not i386) is an error") {
    auto image = as_elf32(make_pvh_elf({}));
    put<uint16_t>(image, offsetof(Elf32_Ehdr, e_machine), EM_X86_64);

    CHECK(contains(parse_error(image), "not i386"));
}

TEST_CASE("a 32-bit ELF whose e_phentsize is the 64-bit one is an error") {
    auto image = as_elf32(make_pvh_elf({}));
    put<uint16_t>(image, offsetof(Elf32_Ehdr, e_phentsize), sizeof(Elf64_Phdr));

    CHECK(contains(parse_error(image), "e_phentsize"));
}

TEST_CASE("a 32-bit ELF with a segment file range outside the file is an error") {
    auto image = as_elf32(make_pvh_elf({}));
    put<uint32_t>(image, phdr32_offset(1) + offsetof(Elf32_Phdr, p_offset), UINT32_MAX - 0x10);

    CHECK(contains(parse_error(image), "outside the file"));
}

TEST_CASE("the fuzz corpus holds a 32-bit PVH ELF") {
    // tests/fuzz/corpus/fuzz_kernel_loader/: the control byte (2: PVH, no initrd), then the image.
    // Rewritten with KITE_WRITE_FUZZ_SEED=1 unit_boot.
    auto image = as_elf32(make_pvh_elf({.segments = {{1 * MiB, 0x200, 0x1000}}, .entry = 1 * MiB + 0x10}));
    image.insert(image.begin(), std::byte{2});
    const std::string path = std::string(KITE_SOURCE_DIR) + "/tests/fuzz/corpus/fuzz_kernel_loader/pvh-elf32.bin";
    if (std::getenv("KITE_WRITE_FUZZ_SEED")) {
        FILE* f = std::fopen(path.c_str(), "wb");
        REQUIRE(f);
        CHECK(std::fwrite(image.data(), 1, image.size(), f) == image.size());
        std::fclose(f);
    }
    std::vector<std::byte> stored(image.size() + 1);
    FILE* f = std::fopen(path.c_str(), "rb");
    REQUIRE_MESSAGE(f, path);
    stored.resize(std::fread(stored.data(), 1, stored.size(), f));
    std::fclose(f);

    CHECK(stored == image);
    CHECK(parse_pvh_elf(std::span(stored).subspan(1)).has_value());
}
