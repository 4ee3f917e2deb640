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
// none, and Linux skips SCI setup on such platforms.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "memory/address.h"
#include "memory/error.h"

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
