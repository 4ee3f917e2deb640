// The VM's GSI routing table. KVM_SET_GSI_ROUTING replaces the whole table, so one object owns it:
// GSIs 0-23 are the I/O APIC's pins (each unmasked redirection entry as an MSI route, set by the
// Ioapic's callback), GSIs from kFirstPciGsi on are PCI functions' MSI-X vectors, handed out in blocks
// by allocate() and routed by the virtio-pci transports (as their PciInterruptHost, which also binds
// their irqfds and ioeventfds).
//
// Threads: any (vCPU threads through the transports and the I/O APIC); one mutex around each change.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>

#include "base/log_limit.h"
#include "devices/legacy/ioapic.h"
#include "devices/virtio/pci_transport.h"
#include "vmm/kvm/kvm.h"

namespace kite {

class GsiRouting final : public PciInterruptHost {
public:
    static constexpr uint32_t kFirstPciGsi = Ioapic::kPins;
    static constexpr uint32_t kMaxGsi = 4095;  // KVM_MAX_IRQ_ROUTES - 1

    explicit GsiRouting(const VmFd& fd) : fd_(fd) {}

    // The Ioapic's callback. KVM refuses an MSI route only for a malformed x2APIC address, which the I/O
    // APIC's never are: a failure is logged.
    void set_ioapic_routes(const Ioapic::Routes& routes);
    // `count` consecutive GSIs from kFirstPciGsi on; refused past kMaxGsi. Set-up only.
    Result<uint32_t> allocate(uint32_t count);

    // PciInterruptHost
    Result<void> set_msi_route(uint32_t gsi, uint64_t address, uint32_t data) override;
    Result<void> bind_irqfd(int fd, uint32_t gsi) override { return fd_.register_irqfd(fd, gsi); }
    Result<void> unbind_irqfd(int fd, uint32_t gsi) override { return fd_.unregister_irqfd(fd, gsi); }
    Result<void> bind_ioeventfd(int fd, uint64_t address, uint32_t length, std::optional<uint64_t> datamatch) override {
        return fd_.register_ioeventfd(fd, address, length, datamatch, false);
    }
    Result<void> unbind_ioeventfd(int fd, uint64_t address, uint32_t length,
                                  std::optional<uint64_t> datamatch) override {
        return fd_.unregister_ioeventfd(fd, address, length, datamatch, false);
    }

private:
    Result<void> commit_locked();

    const VmFd& fd_;
    std::mutex mutex_;
    Ioapic::Routes ioapic_{};
    std::map<uint32_t, MsiMessage> pci_;  // by GSI
    uint32_t next_gsi_ = kFirstPciGsi;
    LogLimit log_;  // routes change on guest writes to the I/O APIC
};

}  // namespace kite
