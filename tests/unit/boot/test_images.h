// Synthetic kernel images for the loader tests: a bzImage with a real setup header and a patterned
// payload, and an ELF64 vmlinux with PT_LOAD segments and a PVH note. Built byte by byte so each test
// can break exactly one field.
#pragma once

#include <asm/bootparam.h>
#include <elf.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace kite::boot::test {

inline constexpr uint64_t MiB = 1024 * 1024;

template <class T>
void put(std::vector<std::byte>& bytes, size_t offset, T value) {
    std::memcpy(bytes.data() + offset, &value, sizeof value);
}

template <class T>
T get(const std::vector<std::byte>& bytes, size_t offset) {
    T value;
    std::memcpy(&value, bytes.data() + offset, sizeof value);
    return value;
}

// The byte the payload has at offset i, so tests can check what was copied where.
inline std::byte pattern(uint64_t i) { return static_cast<std::byte>((i * 7 + 3) & 0xff); }

struct BzImageSpec {
    uint16_t version = 0x020f;
    uint8_t setup_sects = 4;
    uint64_t payload_size = 0x3000;
    uint32_t init_size = 4 * MiB;
    uint64_t pref_address = 16 * MiB;
    uint32_t kernel_alignment = 2 * MiB;
    uint8_t relocatable = 1;
    uint32_t initrd_addr_max = 0x7fffffff;
    uint32_t cmdline_size = 255;
    uint16_t xloadflags = XLF_KERNEL_64;
    uint8_t loadflags = LOADED_HIGH;
};

inline std::vector<std::byte> make_bzimage(const BzImageSpec& spec) {
    uint64_t setup_size = (uint64_t{spec.setup_sects == 0 ? 4u : spec.setup_sects} + 1) * 512;
    std::vector<std::byte> b(setup_size + spec.payload_size);
    put<uint8_t>(b, 0x1f1, spec.setup_sects);
    put<uint32_t>(b, 0x1f4, static_cast<uint32_t>(spec.payload_size / 16));  // syssize
    put<uint16_t>(b, 0x1fe, 0xaa55);                                        // boot_flag
    put<uint8_t>(b, 0x200, 0xeb);                                           // jmp short ...
    put<uint8_t>(b, 0x201, 0x6a);                                           // ... header ends at 0x26c
    put<uint32_t>(b, 0x202, 0x53726448);                                    // "HdrS"
    put<uint16_t>(b, 0x206, spec.version);
    put<uint8_t>(b, 0x211, spec.loadflags);
    put<uint32_t>(b, 0x214, 0x100000);                                      // code32_start
    put<uint32_t>(b, 0x22c, spec.initrd_addr_max);
    put<uint32_t>(b, 0x230, spec.kernel_alignment);
    put<uint8_t>(b, 0x234, spec.relocatable);
    put<uint16_t>(b, 0x236, spec.xloadflags);
    put<uint32_t>(b, 0x238, spec.cmdline_size);
    put<uint64_t>(b, 0x258, spec.pref_address);
    put<uint32_t>(b, 0x260, spec.init_size);
    for (uint64_t i = 0; i < spec.payload_size; ++i) b[setup_size + i] = pattern(i);
    return b;
}

struct SegmentSpec {
    uint64_t paddr;
    uint64_t file_size;
    uint64_t mem_size;
};

struct ElfSpec {
    std::vector<SegmentSpec> segments = {{1 * MiB, 0x2000, 0x3000}};
    uint64_t entry = 1 * MiB + 0x100;
    uint32_t entry_size = 4;  // 4 or 8 bytes, as the note allows
};

// Layout: ELF header, program headers (PT_NOTE first, then the PT_LOADs), the notes (a GNU note, then the
// Xen PVH note), then each segment's file bytes at a 16-byte-aligned offset.
inline constexpr size_t kPhdrsOffset = sizeof(Elf64_Ehdr);
inline size_t phdr_offset(size_t index) { return kPhdrsOffset + index * sizeof(Elf64_Phdr); }

inline std::vector<std::byte> make_pvh_elf(const ElfSpec& spec) {
    size_t phnum = 1 + spec.segments.size();
    size_t notes_at = phdr_offset(phnum);
    // GNU build-id style note (16 + 4 bytes of desc) to make the scanner skip one, then the Xen note.
    size_t gnu_note = 12 + 4 + 4;
    size_t xen_note = 12 + 4 + spec.entry_size;
    size_t data_at = (notes_at + gnu_note + xen_note + 15) & ~size_t{15};
    size_t total = data_at;
    for (const auto& s : spec.segments) total += (s.file_size + 15) & ~uint64_t{15};
    std::vector<std::byte> b(total);

    Elf64_Ehdr eh{};
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = ET_EXEC;
    eh.e_machine = EM_X86_64;
    eh.e_version = EV_CURRENT;
    eh.e_entry = 0xffffffff81000000;  // the virtual entry, which PVH ignores
    eh.e_phoff = kPhdrsOffset;
    eh.e_ehsize = sizeof(Elf64_Ehdr);
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = static_cast<uint16_t>(phnum);
    put(b, 0, eh);

    Elf64_Phdr note{};
    note.p_type = PT_NOTE;
    note.p_offset = notes_at;
    note.p_filesz = gnu_note + xen_note;
    note.p_align = 4;
    put(b, phdr_offset(0), note);
    put<uint32_t>(b, notes_at, 4);
    put<uint32_t>(b, notes_at + 4, 4);
    put<uint32_t>(b, notes_at + 8, 3);  // NT_GNU_BUILD_ID
    std::memcpy(b.data() + notes_at + 12, "GNU", 4);
    put<uint32_t>(b, notes_at + 16, 0x12345678);
    size_t xen_at = notes_at + gnu_note;
    put<uint32_t>(b, xen_at, 4);
    put<uint32_t>(b, xen_at + 4, spec.entry_size);
    put<uint32_t>(b, xen_at + 8, 18);  // XEN_ELFNOTE_PHYS32_ENTRY
    std::memcpy(b.data() + xen_at + 12, "Xen", 4);
    if (spec.entry_size == 8) put<uint64_t>(b, xen_at + 16, spec.entry);
    if (spec.entry_size == 4) put<uint32_t>(b, xen_at + 16, static_cast<uint32_t>(spec.entry));

    size_t at = data_at;
    for (size_t i = 0; i < spec.segments.size(); ++i) {
        const auto& s = spec.segments[i];
        Elf64_Phdr ph{};
        ph.p_type = PT_LOAD;
        ph.p_flags = PF_R | PF_X;
        ph.p_offset = at;
        ph.p_vaddr = 0xffffffff80000000 + s.paddr;
        ph.p_paddr = s.paddr;
        ph.p_filesz = s.file_size;
        ph.p_memsz = s.mem_size;
        ph.p_align = 16;
        put(b, phdr_offset(1 + i), ph);
        for (uint64_t j = 0; j < s.file_size; ++j) b[at + j] = pattern(j + i);
        at += (s.file_size + 15) & ~uint64_t{15};
    }
    return b;
}

// Offset of the Xen note's header (namesz, descsz, type) in an image from make_pvh_elf.
inline size_t xen_note_offset(const ElfSpec& spec) { return phdr_offset(1 + spec.segments.size()) + 20; }

}  // namespace kite::boot::test
