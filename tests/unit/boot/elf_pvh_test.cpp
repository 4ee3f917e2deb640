#include <doctest/doctest.h>

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

TEST_CASE("32-bit ELF is an error") {
    auto image = make_pvh_elf({});
    put<uint8_t>(image, EI_CLASS, ELFCLASS32);

    CHECK(contains(parse_error(image), "not a 64-bit ELF"));
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
