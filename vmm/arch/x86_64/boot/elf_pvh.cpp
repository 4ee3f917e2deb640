#include "vmm/arch/x86_64/boot/elf_pvh.h"

#include <elf.h>

#include <cstring>
#include <optional>
#include <string>

#include "base/size.h"

namespace kite::boot {

namespace {

constexpr uint64_t kMaxPhdrs = 1024;

// Copies a T out of image[offset..] if it lies entirely inside the image.
template <class T>
std::optional<T> read_at(std::span<const std::byte> image, uint64_t offset) {
    if (offset > image.size() || sizeof(T) > image.size() - offset) return std::nullopt;
    T value;
    std::memcpy(&value, image.data() + offset, sizeof(T));
    return value;
}

bool inside_file(std::span<const std::byte> image, uint64_t offset, uint64_t size) {
    return offset <= image.size() && size <= image.size() - offset;
}

uint64_t align4(uint64_t n) { return (n + 3) & ~uint64_t{3}; }

// Scans one PT_NOTE segment for the PVH entry note. nullopt: no such note here.
Result<std::optional<uint64_t>> find_pvh_note(std::span<const std::byte> notes) {
    uint64_t at = 0;
    while (notes.size() - at >= sizeof(Elf64_Nhdr)) {
        auto nhdr = *read_at<Elf64_Nhdr>(notes, at);
        uint64_t name_at = at + sizeof(Elf64_Nhdr);
        uint64_t desc_at = name_at + align4(nhdr.n_namesz);  // n_namesz is 32-bit: cannot overflow
        uint64_t next = desc_at + align4(nhdr.n_descsz);
        if (next > notes.size()) return fail("PVH ELF: note at offset " + hex_text(at) + " runs past its PT_NOTE segment");
        bool is_xen = nhdr.n_namesz == 4 && std::memcmp(notes.data() + name_at, "Xen", 4) == 0;
        if (is_xen && nhdr.n_type == kXenElfnotePhys32Entry) {
            if (nhdr.n_descsz == 4) return std::optional<uint64_t>(*read_at<uint32_t>(notes, desc_at));
            if (nhdr.n_descsz == 8) return std::optional<uint64_t>(*read_at<uint64_t>(notes, desc_at));
            return fail("PVH ELF: XEN_ELFNOTE_PHYS32_ENTRY has a " + std::to_string(nhdr.n_descsz) +
                        "-byte value (want 4 or 8)");
        }
        at = next;
    }
    return std::optional<uint64_t>();
}

// The two ELF classes a PVH kernel comes in: the PVH entry is 32-bit either way, so an i386 vmlinux
// (ELF32) boots like an x86_64 one. Only the header and program header layouts differ; notes are alike.
struct Elf64Class {
    using Ehdr = Elf64_Ehdr;
    using Phdr = Elf64_Phdr;
    static constexpr uint16_t kMachine = EM_X86_64;
    static constexpr const char* kMachineName = "x86_64";
};
struct Elf32Class {
    using Ehdr = Elf32_Ehdr;
    using Phdr = Elf32_Phdr;
    static constexpr uint16_t kMachine = EM_386;
    static constexpr const char* kMachineName = "i386";
};

template <class C>
Result<PvhElf> parse_pvh_elf_as(std::span<const std::byte> image) {  // guest-controlled
    using Phdr = typename C::Phdr;
    auto ehdr = read_at<typename C::Ehdr>(image, 0);
    if (!ehdr) return fail("ELF: truncated: " + std::to_string(image.size()) + " bytes, no room for the ELF header");
    if (ehdr->e_ident[EI_DATA] != ELFDATA2LSB) return fail("ELF: not little-endian");
    if (ehdr->e_machine != C::kMachine)
        return fail("ELF: machine " + std::to_string(ehdr->e_machine) + " is not " + C::kMachineName);
    if (ehdr->e_phentsize != sizeof(Phdr))
        return fail("ELF: e_phentsize " + std::to_string(ehdr->e_phentsize) + " is not " + std::to_string(sizeof(Phdr)));
    if (ehdr->e_phnum == 0 || ehdr->e_phnum > kMaxPhdrs) return fail("ELF: e_phnum " + std::to_string(ehdr->e_phnum) + " is out of range");
    if (!inside_file(image, ehdr->e_phoff, uint64_t{ehdr->e_phnum} * sizeof(Phdr))) {
        return fail("ELF: program headers at " + hex_text(ehdr->e_phoff) + " lie outside the file");
    }

    PvhElf out{image, {}, GuestAddress()};
    std::optional<uint64_t> entry;
    for (uint64_t i = 0; i < ehdr->e_phnum; ++i) {
        auto ph = *read_at<Phdr>(image, ehdr->e_phoff + i * sizeof(Phdr));
        std::string which = "ELF: program header " + std::to_string(i);
        if (ph.p_type != PT_LOAD && ph.p_type != PT_NOTE) continue;
        if (!inside_file(image, ph.p_offset, ph.p_filesz)) {
            return fail(which + ": file range " + range_text(ph.p_offset, ph.p_filesz) + " lies outside the file");
        }
        if (ph.p_type == PT_NOTE) {
            auto found = find_pvh_note(image.subspan(ph.p_offset, ph.p_filesz));
            if (!found) return std::unexpected(found.error());
            if (*found && !entry) entry = **found;
            continue;
        }
        if (ph.p_filesz > ph.p_memsz) {
            return fail(which + ": p_filesz " + hex_text(ph.p_filesz) + " is larger than p_memsz " + hex_text(ph.p_memsz));
        }
        if (ph.p_memsz == 0) continue;
        if (!GuestAddress(ph.p_paddr).checked_add(ph.p_memsz)) {
            return fail(which + ": " + range_text(ph.p_paddr, ph.p_memsz) + " wraps around the address space");
        }
        if (ph.p_paddr < kHighMemoryStart) {
            return fail(which + ": p_paddr " + hex_text(ph.p_paddr) + " is below 1 MiB, where the loader's structures live");
        }
        for (const auto& other : out.segments) {
            if (ranges_overlap(ph.p_paddr, ph.p_memsz, other.paddr.value(), other.mem_size)) {
                return fail(which + ": " + range_text(ph.p_paddr, ph.p_memsz) + " overlaps another segment");
            }
        }
        out.segments.push_back(ElfSegment{GuestAddress(ph.p_paddr), ph.p_offset, ph.p_filesz, ph.p_memsz});
    }
    if (out.segments.empty()) return fail("ELF: no PT_LOAD segment");
    if (!entry) return fail("ELF: no PVH entry note (\"Xen\" note of type XEN_ELFNOTE_PHYS32_ENTRY)");
    if (*entry >= k4GiB) return fail("PVH ELF: entry " + hex_text(*entry) + " is not a 32-bit address");
    bool entry_loaded = false;
    for (const auto& s : out.segments) {
        auto off = GuestAddress(*entry).offset_from(s.paddr);
        entry_loaded = entry_loaded || (off && *off < s.file_size);
    }
    if (!entry_loaded) return fail("PVH ELF: entry " + hex_text(*entry) + " is not inside the file part of any PT_LOAD segment");
    out.entry = GuestAddress(*entry);
    return out;
}

}  // namespace

bool has_elf_magic(std::span<const std::byte> image) {
    return image.size() >= SELFMAG && std::memcmp(image.data(), ELFMAG, SELFMAG) == 0;
}

Result<PvhElf> parse_pvh_elf(std::span<const std::byte> image) {  // guest-controlled
    if (image.size() < EI_NIDENT) return fail("ELF: truncated: " + std::to_string(image.size()) + " bytes, no room for the ELF header");
    if (!has_elf_magic(image)) return fail("ELF: bad magic");
    const auto elf_class = static_cast<uint8_t>(image[EI_CLASS]);
    if (elf_class == ELFCLASS64) return parse_pvh_elf_as<Elf64Class>(image);
    if (elf_class == ELFCLASS32) return parse_pvh_elf_as<Elf32Class>(image);
    return fail("ELF: neither a 32- nor a 64-bit ELF (EI_CLASS " + std::to_string(elf_class) + ")");
}

Result<void> load_pvh_elf(GuestMemory& mem, const PvhElf& elf) {
    for (const auto& s : elf.segments) {
        if (!mem.contains(s.paddr, s.mem_size)) {
            return fail("PVH ELF: segment " + range_text(s.paddr.value(), s.mem_size) + " is outside guest RAM");
        }
    }
    for (const auto& s : elf.segments) {
        auto ok = mem.write(s.paddr, elf.image.subspan(s.file_offset, s.file_size));
        uint64_t bss = s.mem_size - s.file_size;
        GuestAddress bss_at(s.paddr.value() + s.file_size);
        // Zero the bss piece by piece: it may be large and may span regions.
        std::byte zeros[4096]{};
        for (uint64_t done = 0; ok && done < bss; done += sizeof zeros) {
            ok = mem.write(GuestAddress(bss_at.value() + done), std::span(zeros, std::min<uint64_t>(sizeof zeros, bss - done)));
        }
        if (!ok) return fail("PVH ELF: loading a segment: " + ok.error().message);
    }
    return {};
}

std::vector<AddressRange> pvh_elf_ranges(const PvhElf& elf) {
    std::vector<AddressRange> out;
    for (const auto& s : elf.segments) out.emplace_back(s.paddr, s.mem_size);
    return out;
}

}  // namespace kite::boot
