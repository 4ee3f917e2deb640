// The x86_64 guest-physical memory map Kite gives every VM:
//
//   [0, min(RAM, 3 GiB))        low RAM
//   [3 GiB, 4 GiB)              32-bit MMIO hole: PCI BARs from 0xc0000000, virtio-mmio transports at
//                               0xd0000000, IOAPIC, LAPIC
//   [4 GiB, 4 GiB + rest)       high RAM, if RAM is larger than 3 GiB
//   [shm_base, kGuestPhysLimit) shared-memory windows of VIRTIO devices (1 GiB aligned, >= 4 GiB)
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "base/error.h"
#include "memory/address.h"

namespace kite {

inline constexpr uint64_t kMmioHoleStart = 0xC000'0000;    // 3 GiB
inline constexpr uint64_t kMmioHoleEnd = 0x1'0000'0000;    // 4 GiB
inline constexpr uint64_t kPciMmioBase = 0xC000'0000;      // PCI BARs: [kPciMmioBase, kVirtioMmioBase)
inline constexpr uint64_t kVirtioMmioBase = 0xD000'0000;   // first virtio-mmio transport
inline constexpr uint64_t kVirtioMmioStride = 0x1000;      // one 4 KiB transport each
inline constexpr unsigned kVirtioMmioMaxDevices = 64;      // size of the transport window in slots
inline constexpr uint64_t kIoapicBase = 0xFEC0'0000;
inline constexpr uint64_t kLapicBase = 0xFEE0'0000;
inline constexpr uint64_t kMinRamSize = 16 << 20;
// Everything the guest sees stays below 1 TiB: 40 physical address bits is the smallest width Kite
// expects of a guest CPU (QEMU's TCG default), and a guest cannot reach addresses beyond its width.
inline constexpr uint64_t kGuestPhysLimit = 1ull << 40;
inline constexpr uint64_t kShmWindowAlign = 2 << 20;  // lets the host back windows with 2 MiB pages

static_assert(kVirtioMmioBase >= kMmioHoleStart &&
              kVirtioMmioBase + kVirtioMmioMaxDevices * kVirtioMmioStride <= kIoapicBase);

struct X86Layout {
    // RAM ranges in ascending order: [0, min(size, 3 GiB)), then [4 GiB, ...) if anything is left.
    // The VMM creates one RAM block per range.
    std::vector<std::pair<GuestAddress, uint64_t>> ram;
    // First address above RAM, 1 GiB aligned and >= 4 GiB: where shared-memory windows go.
    GuestAddress shm_base;
    // End (exclusive) of the space for shared-memory windows.
    GuestAddress shm_limit;
};

// Refuses sizes below 16 MiB, not 4 KiB aligned, or too large to fit under kGuestPhysLimit.
Result<X86Layout> x86_layout(uint64_t ram_size);

// Hands out guest-physical ranges for shared-memory windows, in ascending order, each aligned to
// kShmWindowAlign. Windows live as long as the VM, so nothing is ever given back.
class ShmAllocator {
public:
    ShmAllocator(GuestAddress base, GuestAddress limit) : next_(base), limit_(limit) {}
    explicit ShmAllocator(const X86Layout& layout) : ShmAllocator(layout.shm_base, layout.shm_limit) {}

    // A window of `size` bytes (non-zero, 4 KiB aligned). Refused once the space is used up.
    Result<GuestAddress> allocate(uint64_t size);
    // Where the next window would start (before alignment): for devices that learn their size later.
    GuestAddress next() const { return next_; }

private:
    GuestAddress next_;
    GuestAddress limit_;
};

// Guest-physical base of virtio-mmio transport `index`. Precondition: index < kVirtioMmioMaxDevices
// (virtio_mmio_irq() runs out earlier, so callers that take an IRQ first stay inside).
GuestAddress virtio_mmio_base(unsigned index);
// IOAPIC pin of virtio-mmio transport `index`: pins 5..23 in order (index 0 -> pin 5); nullopt past pin 23.
std::optional<unsigned> virtio_mmio_irq(unsigned index);

}  // namespace kite
