// Kite's PCI root complex: one bus (bus 0), a host bridge at 00:00.0, up to 31 devices in slots 1..31
// (function 0 only), configuration mechanism #1 (ports 0xcf8-0xcff), and one 32-bit memory window that
// every BAR is placed in.
//
// Guests find the bus through the ACPI DSDT (a PNP0A03 host bridge whose _CRS gives bus 0, the config
// ports and the memory window: vmm/arch/x86_64/acpi/tables.h); Linux probes mechanism #1 itself (it writes
// 0x80000000 to 0xcf8 and reads it back, then looks for a host bridge on bus 0).
//
// Mechanism #1: a 4-byte write to 0xcf8 latches the address (bit 31 enable, bus 16-23, device 11-15,
// function 8-10, register 2-7); reads return the latch. Other widths at 0xcf8-0xcfb are ignored (reads
// all ones). 0xcfc-0xcff access the latched register plus (port - 0xcfc), 1, 2 or 4 bytes within the
// dword. Absent devices, functions other than 0, buses other than 0 and a disabled latch read all ones
// and ignore writes.
//
// BARs: add() takes a device whose BARs the caller placed with allocate_bar(); mmio_window() dispatches
// each access to the device whose BAR currently decodes there (the guest may move BARs: ask the device).
// An access that no BAR covers reads all ones, writes are dropped.
//
// Threads: set-up (add, allocate_bar) before vCPUs run; the BusDevices are safe from any number of vCPU
// threads (config accesses under one mutex, BAR dispatch without it).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "base/error.h"
#include "devices/bus_device.h"
#include "devices/pci/config_space.h"
#include "devices/pci/pci_device.h"

namespace kite::pci {

inline constexpr uint16_t kConfigAddressPort = 0xcf8;
inline constexpr uint16_t kConfigPortsLength = 8;  // 0xcf8-0xcff
inline constexpr unsigned kMaxSlots = 32;          // slot 0 is the host bridge

class PciRoot {
public:
    // The BAR window [mmio_base, mmio_base + mmio_size): below 4 GiB, 4 KiB aligned, not empty.
    PciRoot(uint64_t mmio_base, uint64_t mmio_size);

    uint64_t mmio_base() const { return mmio_base_; }
    uint64_t mmio_size() const { return mmio_size_; }

    // An address for a BAR of `size` bytes (power of two, >= 16) in the window, aligned to its size (at
    // least 4 KiB, so no two BARs share a page). Fails once the window is full.
    Result<uint64_t> allocate_bar(uint64_t size);
    // Puts `device` in the next free slot; returns the slot number (1..31). Fails when all are taken.
    Result<unsigned> add(std::shared_ptr<PciDevice> device);

    // Register at port kConfigAddressPort, length kConfigPortsLength, on the port I/O bus.
    std::shared_ptr<BusDevice> config_ports() const;
    // Register at mmio_base(), length mmio_size(), on the MMIO bus.
    std::shared_ptr<BusDevice> mmio_window() const;

private:
    class Ports;
    class Window;
    class HostBridge;

    uint64_t mmio_base_;
    uint64_t mmio_size_;
    uint64_t next_bar_;
    std::array<std::shared_ptr<PciDevice>, kMaxSlots> slots_{};
    std::shared_ptr<Ports> ports_;
    std::shared_ptr<Window> window_;
};

}  // namespace kite::pci
