// An interrupt line as devices see it. The VMM backs it with a KVM irqfd (an edge pulse on a pin of
// Kite's I/O APIC, devices/legacy/ioapic.h); tests back it with a counter.
#pragma once

namespace kite {

class IrqLine {
public:
    virtual ~IrqLine() = default;
    // Raise the interrupt once. Safe from any thread.
    virtual void trigger() = 0;
};

}  // namespace kite
