#include "vmm/kvm/gsi_routing.h"

#include <fmt/format.h>
#include <linux/kvm.h>
#include <spdlog/spdlog.h>

#include <vector>

namespace kite {

namespace {

kvm_irq_routing_entry msi_entry(uint32_t gsi, const MsiMessage& message) {
    kvm_irq_routing_entry e{};
    e.gsi = gsi;
    e.type = KVM_IRQ_ROUTING_MSI;
    e.u.msi.address_lo = static_cast<uint32_t>(message.address);
    e.u.msi.address_hi = static_cast<uint32_t>(message.address >> 32);
    e.u.msi.data = message.data;
    return e;
}

}  // namespace

void GsiRouting::set_ioapic_routes(const Ioapic::Routes& routes) {
    std::lock_guard lock(mutex_);
    ioapic_ = routes;
    if (auto r = commit_locked(); !r) log_.error("I/O APIC: {}", r.error().message);
}

Result<uint32_t> GsiRouting::allocate(uint32_t count) {
    std::lock_guard lock(mutex_);
    if (count == 0 || count > kMaxGsi + 1 - next_gsi_)
        return fail(fmt::format("no {} GSIs left for MSI-X vectors (GSIs up to {} are taken)", count, next_gsi_ - 1));
    uint32_t first = next_gsi_;
    next_gsi_ += count;
    return first;
}

Result<void> GsiRouting::set_msi_route(uint32_t gsi, uint64_t address, uint32_t data) {
    std::lock_guard lock(mutex_);
    if (gsi < kFirstPciGsi || gsi >= next_gsi_) return fail(fmt::format("GSI {} is not an MSI-X vector's", gsi));
    MsiMessage message{address, data};
    auto it = pci_.find(gsi);
    if (it != pci_.end() && it->second == message) return {};
    std::optional<MsiMessage> before;
    if (it != pci_.end()) before = it->second;
    pci_[gsi] = message;
    if (auto r = commit_locked(); !r) {
        // A route KVM refused (a malformed x2APIC address) is left out; the table stays as it was.
        if (before) pci_[gsi] = *before;
        else pci_.erase(gsi);
        return fail(fmt::format("MSI route {:#x}/{:#x} for GSI {} refused: {}", address, data, gsi, r.error().message));
    }
    return {};
}

Result<void> GsiRouting::commit_locked() {
    std::vector<kvm_irq_routing_entry> entries;
    for (uint32_t pin = 0; pin < Ioapic::kPins; ++pin)
        if (ioapic_[pin]) entries.push_back(msi_entry(pin, *ioapic_[pin]));
    for (const auto& [gsi, message] : pci_) entries.push_back(msi_entry(gsi, message));
    return fd_.set_gsi_routing(entries);
}

}  // namespace kite
