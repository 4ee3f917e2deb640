// The x86_64 interrupt controllers: KVM keeps the local APICs (a split irqchip); the I/O APIC is Kite's
// (devices/legacy/ioapic.h), on the MMIO bus at its architectural address, and each of its unmasked pins
// is an MSI route in the VM's GSI routing table.
//
// Why: KVM injects an MSI route from an irqfd at once, in the signalling thread, while an in-kernel I/O
// APIC route goes through a kworker (irqfd_wakeup only injects MSIs inline), one more thread wake-up per
// interrupt of every device. There is no PIC or PIT: on a hardware-reduced ACPI machine Linux uses neither.
#pragma once

#include <memory>

#include "base/error.h"
#include "devices/bus.h"
#include "devices/legacy/ioapic.h"
#include "vmm/kvm/gsi_routing.h"
#include "vmm/kvm/kvm.h"

namespace kite {

struct X86Irqchip {
    std::shared_ptr<GsiRouting> routing;  // owns the whole KVM routing table (I/O APIC pins, MSI-X)
    std::shared_ptr<Ioapic> ioapic;       // the caller keeps its state for snapshots
};

// Creates the split irqchip on `vm` and the I/O APIC on `mmio`. Call after the RAM memslots: creating
// the irqchip starts SRCU grace periods, and the next memslot change then waits for them (6-7 ms of a
// ~9 ms start-up on a PVM host; 0.07 ms when it comes first).
Result<X86Irqchip> create_irqchip(const VmFd& vm, Bus& mmio);

}  // namespace kite
