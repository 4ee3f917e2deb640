// VmBuilder: turns a VmConfig into a runnable Vm, one explicit step per concern and one attach_<kind>()
// per device kind (Firecracker's builder, docs/ARCHITECTURE.md example 7). Any failure is a set-up error:
// the message names what failed, nothing has started running.
#pragma once

#include <memory>
#include <string_view>

#include "base/error.h"
#include "memory/host_mapping.h"
#include "vmm/arch/x86_64/acpi/tables.h"
#include "vmm/arch/x86_64/boot/boot_state.h"
#include "vmm/arch/x86_64/layout.h"
#include "vmm/config/config.h"
#include "vmm/vm.h"

namespace kite {

class OutputSink;

class GsiRouting;
class ShmMemslots;
class VirtioDevice;
class VirtioMmioTransport;
class VirtioPciTransport;
namespace pci {
class PciRoot;
}
namespace vhost {
struct VhostUserDeviceConfig;
}

class VmBuilder {
public:
    explicit VmBuilder(const VmConfig& config) : config_(config) {}
    Result<std::unique_ptr<Vm>> build();

private:
    Result<void> create_vm();
    Result<void> create_irqchip();
    Result<void> setup_memory();
    Result<void> map_register_pages();
    Result<void> attach_legacy_devices();
    Result<void> attach_devices();  // vmm/builder_devices.cpp, as are the attach() steps
    Result<void> write_acpi_tables();
    Result<void> write_reset_vector();
    Result<void> load_kernel();
    Result<void> create_vcpus();

    // Opens a device's output sink, kept with the VM and given a short flush once the VM stops (a stuck
    // output must not hold up the exit: SIGTERM ends Kite within a second).
    Result<std::shared_ptr<OutputSink>> open_output(const OutputConfig& config, std::string_view what);
    // Registers an interrupt line on IOAPIC pin `gsi` through an irqfd.
    Result<std::shared_ptr<IrqFdLine>> irq_line(uint32_t gsi);

    Result<void> attach(const BlockConfig& config);
    Result<void> attach(const NetConfig& config);
    Result<void> attach(const RngConfig& config);
    Result<void> attach(const ConsoleConfig& config);
    Result<void> attach(const VhostUserBlkConfig& config);
    Result<void> attach(const VhostUserFsConfig& config);
    Result<void> attach(const VhostUserGenericConfig& config);
    Result<void> attach_vhost_user(vhost::VhostUserDeviceConfig config, const VhostUserCommon& common);
    Result<std::shared_ptr<VirtioMmioTransport>> add_transport(std::shared_ptr<VirtioDevice> device);
    // A virtio-pci function on the PCI root (created, with its ports and window, on first use).
    Result<std::shared_ptr<VirtioPciTransport>> add_pci_transport(std::shared_ptr<VirtioDevice> device);
    Result<void> shm_memslots();  // creates shm_memslots_ on first use

    // Memslots below kRegisterPagesMemslot are RAM's (one per RAM range); that one maps the virtio-mmio
    // register pages; shared-memory mappings take the ones from kFirstShmMemslot on.
    static constexpr uint32_t kRegisterPagesMemslot = 15;
    static constexpr uint32_t kFirstShmMemslot = 16;

    const VmConfig& config_;
    std::unique_ptr<Vm> vm_;
    std::shared_ptr<HostMapping> register_pages_;  // one page per transport, in transport order
    std::optional<X86Layout> layout_;
    std::optional<ShmAllocator> shm_allocator_;   // guest space above RAM for VIRTIO shm regions
    std::shared_ptr<ShmMemslots> shm_memslots_;   // memslots of the shm regions' mappings
    GsiRouting* gsi_routing_ = nullptr;            // kept by vm_
    std::shared_ptr<pci::PciRoot> pci_root_;      // only once a device asked for virtio-pci
    std::vector<AcpiConfig::VirtioMmio> virtio_acpi_;
    std::optional<GuestAddress> rsdp_;
    std::function<size_t(std::span<const uint8_t>)> console_input_;  // where host stdin goes
    std::function<void(std::function<void()>)> console_space_notifier_;  // how the console says "drained"
    std::optional<boot::BootState> boot_state_;
};

}  // namespace kite
