#include "vmm/arch/x86_64/irqchip.h"

#include "vmm/arch/x86_64/layout.h"

namespace kite {

Result<X86Irqchip> create_irqchip(const VmFd& vm, Bus& mmio) {
    if (auto r = vm.create_split_irqchip(Ioapic::kPins); !r) return std::unexpected(r.error());
    X86Irqchip chip;
    chip.routing = std::make_shared<GsiRouting>(vm);
    chip.ioapic = std::make_shared<Ioapic>(
        [routing = chip.routing](const Ioapic::Routes& routes) { routing->set_ioapic_routes(routes); });
    if (auto r = mmio.insert(chip.ioapic, kIoapicBase, Ioapic::kWindowSize); !r) return std::unexpected(r.error());
    return chip;
}

}  // namespace kite
