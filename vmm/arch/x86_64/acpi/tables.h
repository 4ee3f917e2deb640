// ACPI tables for a hardware-reduced x86_64 machine: RSDP, XSDT, FADT, MADT and DSDT. Stock Linux
// kernels (Debian's among them) find the virtio-mmio transports only through the DSDT, power off
// through the FADT sleep registers and the \_S5_ object, and reboot through the FADT reset register;
// the port numbers and values come from devices/legacy/acpi_pm.h, the same header the device uses.
//
// Interrupts the integrator must route to match: virtio-mmio transports are declared as
// Interrupt(ResourceConsumer, Edge, ActiveHigh, Exclusive) on their GSI (the VMM's irqfds are
// edge-style pulses); COM1 as IRQNoFlags {4} (ISA: edge, active high). The MADT lists the local APICs
// and one I/O APIC (ID 0, GSIs 0-23) and no interrupt source override; its flags say there is no 8259
// PIC (Kite has none, nor a PIT).
// The FADT declares no SCI (SCI_INT 0): a hardware-reduced platform without GPIO-signaled events has
// none, and Linux skips SCI setup on such platforms. Its IA-PC boot flags leave "MSI not supported"
// clear, so the guest may use MSI/MSI-X.
//
// With AcpiConfig::pci set, the DSDT also declares the PCI host bridge \_SB_.PCI0 (Linux scans a PCI
// bus only through such a device): _HID PNP0A08 (PCI Express root bridge), _CID PNP0A03 (PCI bus),
// _ADR 0, _SEG 0, _UID 0, _BBN 0, and a _CRS holding bus numbers 0-0, the configuration mechanism #1
// ports 0xcf8-0xcff (the bridge's own registers), the rest of the I/O port space (0x0000-0x0cf7 and 0x0d00-0xffff,
// produced, so the legacy devices' ports stay reachable) and the 32-bit memory window for BARs
// (non-cacheable, read-write). No _PRT (no INTx: devices use MSI-X only) and no _OSC, and no MCFG
// (no ECAM): the guest reaches configuration space through ports 0xcf8/0xcfc.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "base/error.h"
#include "memory/address.h"

namespace kite {

struct AcpiConfig {
    unsigned num_cpus = 1;  // 1..255; local APIC IDs 0..num_cpus-1, processor UIDs the same
    struct VirtioMmio {
        uint64_t base;  // the transport's register window; must lie below 4 GiB
        uint32_t size;  // not 0
        uint32_t irq;   // GSI (I/O APIC pin), 0-23
    };
    std::vector<VirtioMmio> virtio;  // at most 4096 (device names V000..VFFF)
    bool serial = true;               // declare COM1 (PNP0501, I/O 0x3f8-0x3ff, IRQ 4)
    bool pvpanic = true;              // declare pvpanic (QEMU0001, I/O 0x505)
    struct PciHostBridge {
        uint64_t mmio_base;  // the 32-bit BAR window, below 4 GiB
        uint64_t mmio_size;  // not 0; [mmio_base, mmio_base + mmio_size) must end at or below 4 GiB
    };
    std::optional<PciHostBridge> pci;  // declare \_SB_.PCI0 (see above)
    GuestAddress base;                // where the tables go, 16-byte aligned, e.g. 0xe0000
};

struct AcpiTables {
    GuestAddress rsdp;  // equal to AcpiConfig::base; pass it in boot_params.acpi_rsdp_addr / PVH rsdp_paddr
    // One blob per table (RSDP, XSDT, FADT, MADT, DSDT in that order), packed into
    // [base, base + size) with 16-byte alignment; write each one to guest memory at its address.
    std::vector<std::pair<GuestAddress, std::vector<uint8_t>>> blobs;
    uint64_t size = 0;  // bytes from base to the end of the last table: reserve this range in the e820 map
};

Result<AcpiTables> build_acpi_tables(const AcpiConfig& config);

}  // namespace kite
