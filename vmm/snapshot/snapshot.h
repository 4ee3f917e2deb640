// The snapshot file: a versioned, checksummed container for everything needed to restore a VM.
//
// Layout (all integers little-endian):
//   header   "KITESNAP" | u32 version (3) | u32 flags | u32 reserved (0) | u32 crc32c of the previous 20 bytes
//   sections, each: u32 type | u32 reserved (0) | u64 length | u32 crc32c(payload) | u32 crc32c(first 20
//            bytes of this section header), then `length` payload bytes
//   trailer  a section of type End whose payload is u64 number of sections before it | u64 file length;
//            nothing may follow it.
// Section payloads (see snapshot_encode.cpp for the exact field order): Vcpu (one per vCPU), Clock,
// Device (one per device: name + blob), Memory (one per RAM block: RAM offset, size, GPA or
// unmapped, then either the non-zero plain pages or sealed records from the mirror helper). Plain pages
// start at a file offset that is a multiple of 4 KiB (since version 2: zero padding before them), so they
// move between the file and guest RAM with direct I/O, without the page cache. Version 3 dropped the
// Irqchip and Pit sections of KVM's PIC, I/O APIC and PIT: Kite's own I/O APIC is a Device section, and
// there is no PIC or PIT any more.
//
// read_snapshot/decode_snapshot validate the whole file (every checksum, every length, every field) and
// return plain data; they apply nothing to a running VM. read_snapshot may put the plain pages straight
// into the RAM of a VM that has not run yet (MemoryTarget); its caller must not run that VM unless the
// whole file was accepted.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "vmm/arch/x86_64/vcpu_state.h"
#include "vmm/mirror/page_seal.h"

namespace kite {

inline constexpr char kSnapshotMagic[8] = {'K', 'I', 'T', 'E', 'S', 'N', 'A', 'P'};
inline constexpr uint32_t kSnapshotVersion = 3;
inline constexpr size_t kSnapshotHeaderSize = 24;
inline constexpr size_t kSectionHeaderSize = 24;

// Header flags.
inline constexpr uint32_t kSnapshotFlagSealedMemory = 1;  // memory went through the mirror helper

enum class SectionType : uint32_t {
    Vcpu = 1,
    // 2 and 3 were Irqchip and Pit, up to version 2.
    Clock = 4,
    Device = 5,
    Memory = 6,
    End = 0x454e4421,  // "!DNE"
};

// Bounds that keep a hostile file from asking for absurd allocations.
inline constexpr uint32_t kMaxSnapshotMsrs = 4096;
inline constexpr uint32_t kMaxXsaveSize = 1 << 20;
inline constexpr uint32_t kMaxDeviceNameSize = 256;
inline constexpr uint32_t kMaxVcpus = 1024;

struct DeviceState {
    std::string name;  // unique, 1..256 bytes
    std::vector<uint8_t> data;
};

enum class PageEncoding : uint32_t {
    Plain = 0,   // direct copy: the block's non-zero pages (pages not listed are zero)
    Sealed = 1,  // through the mirror: sealed records, each naming its RAM offset inside the block
};

struct MemoryBlockState {
    uint64_t ram_offset = 0;
    uint64_t size = 0;                // bytes, a non-zero multiple of 4 KiB
    std::optional<uint64_t> gpa;      // where the main VM mapped it, or nullopt if unmapped
    PageEncoding encoding = PageEncoding::Plain;
    std::vector<uint64_t> page_indices;  // Plain: strictly increasing page numbers inside the block
    std::vector<uint8_t> pages;          // Plain: page_indices.size() * 4096 bytes, or empty when borrowed,
                                         // packed or in place
    // Plain: the listed pages back to back in memory this block does not own as `pages`: the bytes
    // decode_snapshot was given (copy_pages false), or a page-aligned copy that `owner` keeps alive.
    std::span<const uint8_t> packed;
    std::shared_ptr<const void> owner;
    // Plain, captured without a copy: the whole block where it lives (guest RAM); the pages are read from
    // here when the snapshot is encoded, so it is valid only while the VM stays paused.
    std::span<const std::byte> borrowed;
    // Plain, read by read_snapshot straight into the memory its MemoryTarget gave: the pages are already
    // there and the unlisted ones zero; nothing is left to copy.
    bool in_place = false;
    std::vector<SealedRecord> records;   // Sealed
};

struct SnapshotData {
    uint32_t flags = 0;
    std::vector<VcpuState> vcpus;
    std::optional<kvm_clock_data> clock;
    std::vector<DeviceState> devices;
    std::vector<MemoryBlockState> memory;
};

// The pages of a Plain block that are not borrowed, back to back: `pages`, or `packed` when decoded in place.
inline std::span<const uint8_t> plain_pages(const MemoryBlockState& m) {
    return m.pages.empty() ? m.packed : std::span<const uint8_t>(m.pages);
}

// A memory section's payload starts with: u64 RAM offset | u64 size | u64 GPA or ~0 | u32 encoding |
// u32 padding (Plain) or 0 (Sealed) | u64 page or record count.
inline constexpr size_t kMemoryHeadSize = 40;
// The zero padding between a Plain block's page index list (u64 each) and its pages when the payload
// starts at file offset `at`: whatever puts the pages at a multiple of 4 KiB.
inline uint32_t plain_pages_padding(uint64_t at, uint64_t count) {
    const uint64_t pages_at = at + kMemoryHeadSize + count * 8;
    return static_cast<uint32_t>((kMirrorPageSize - pages_at % kMirrorPageSize) % kMirrorPageSize);
}

// A Plain block from host memory (`block` is the whole block), keeping only its non-zero pages: copied
// (into page-aligned memory, `packed`), or with `copy` false only listed and borrowed from `block` (which
// must then stay unchanged until the snapshot is written). With `fd`, the file that backs `block` from
// its offset 0 (guest RAM's memfd), the file's holes are not read: a guest's untouched memory stays
// unallocated. Fails only when the memory for a copy cannot be had.
Result<MemoryBlockState> plain_memory_block(uint64_t ram_offset, std::span<const std::byte> block,
                                            std::optional<uint64_t> gpa, bool copy = true, int fd = -1);
// Writes a Plain block's pages into `block` (zeroing the pages not listed). Precondition: validated data
// whose size equals block.size().
void restore_plain_memory_block(const MemoryBlockState& state, std::span<std::byte> block);

// An encoded snapshot as a gather list: small buffers it owns (headers, vCPU and device state) and spans
// of the SnapshotData it was made from (the memory pages), in file order. Guest memory is not copied again
// on its way to the file; the SnapshotData must outlive it.
struct SnapshotPieces {
    std::vector<std::vector<uint8_t>> owned;
    std::vector<std::span<const uint8_t>> spans;
    uint64_t size = 0;
};
Result<SnapshotPieces> encode_snapshot_pieces(const SnapshotData& data);
// The same, as one buffer.
Result<std::vector<uint8_t>> encode_snapshot(const SnapshotData& data);
// With copy_pages false, Plain memory pages are not copied out of `bytes` (MemoryBlockState::packed): the
// caller keeps `bytes` alive as long as the result.
Result<SnapshotData> decode_snapshot(std::span<const uint8_t> bytes, bool copy_pages = true);

// Writes to `path` through a temporary file in the same directory, fsync'ed and renamed into place.
Result<void> write_snapshot(const std::string& path, const SnapshotData& data);
// Writes `pieces` in order to path.tmp (mode 0600), fsyncs and renames it to path: readers never see a
// partial file. `what` names the file in errors ("snapshot", "key file"). Pieces that are whole pages at
// page-aligned file offsets go with direct I/O where the file system has it: a snapshot's gigabytes of
// guest memory do not pass through (and evict) the page cache.
Result<void> write_file_atomically(const std::string& path, std::span<const std::span<const uint8_t>> pieces,
                                   std::string_view what);
Result<void> write_file_atomically(const std::string& path, std::span<const uint8_t> bytes, std::string_view what);
// Where read_snapshot puts a Plain memory block's pages: given the block's RAM offset, size and GPA
// (`head`, in file order), the memory of the matching RAM block (exactly head.size bytes), or an error
// saying why the snapshot does not fit.
using MemoryTarget = std::function<Result<std::span<std::byte>>(const MemoryBlockState& head)>;

// Reads and validates the whole file; errors name the path and what is wrong (truncated, bad magic,
// unsupported version, checksum mismatch, section overflow, bad field). With a `target`, Plain pages go
// straight to the memory it gives (marked in_place; on an error that memory holds part of the file);
// without one they are copied into `pages`.
Result<SnapshotData> read_snapshot(const std::string& path, const MemoryTarget& target = {});

}  // namespace kite
