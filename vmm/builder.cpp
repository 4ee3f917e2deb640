#include "vmm/builder.h"

#include <fmt/format.h>
#include <linux/kvm.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>

#include "devices/legacy/acpi_pm.h"
#include "devices/legacy/debug_exit.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/ioapic.h"
#include "devices/legacy/pvpanic.h"
#include "devices/legacy/serial.h"
#include "devices/pci/pci_root.h"
#include "devices/virtio/mmio_transport.h"
#include "vmm/arch/x86_64/boot/x86_boot.h"
#include "vmm/arch/x86_64/cpuid.h"
#include "vmm/arch/x86_64/irqchip.h"
#include "vmm/arch/x86_64/vcpu_setup.h"
#include "vmm/config/exit_status.h"
#include "vmm/host_console.h"
#include "vmm/kvm/gsi_routing.h"
#include "vmm/kvm/shm_memslots.h"
#include "vmm/output_sink.h"

namespace kite {

namespace {

// Addresses KVM needs for its own use on Intel (real-mode TSS, EPT identity map), just below the BIOS area
// at the top of the 32-bit space, where the guest never has RAM.
constexpr uint64_t kTssAddress = 0xfffb'd000;
constexpr uint64_t kIdentityMapAddress = 0xfffb'c000;
// Where the ACPI tables go: the BIOS read-only area below 1 MiB, where Linux also scans for the RSDP.
// They end where the reset vector's stub begins.
constexpr uint64_t kAcpiTablesBase = 0xe'0000;
constexpr uint64_t kResetVector = 0xf'fff0;  // f000:fff0, where a real-mode restart jumps
constexpr uint64_t kAcpiTablesMax = kResetVector - kAcpiTablesBase;

HugePages to_ram_mode(ConfigHugePages h) {
    switch (h) {
    case ConfigHugePages::Auto: return HugePages::Auto;
    case ConfigHugePages::Transparent: return HugePages::Transparent;
    case ConfigHugePages::Hugetlbfs2M: return HugePages::Hugetlbfs2M;
    case ConfigHugePages::None: break;
    }
    return HugePages::None;
}

boot::BootProtocol to_boot_protocol(BootProtocol p) {
    switch (p) {
    case BootProtocol::BzImage: return boot::BootProtocol::BzImage;
    case BootProtocol::Pvh: return boot::BootProtocol::Pvh;
    case BootProtocol::Auto: break;
    }
    return boot::BootProtocol::Auto;
}

}  // namespace

Result<std::unique_ptr<Vm>> VmBuilder::build() {
    for (auto step : {&VmBuilder::create_vm, &VmBuilder::setup_memory, &VmBuilder::create_irqchip,
                      &VmBuilder::attach_legacy_devices,
                      &VmBuilder::attach_devices, &VmBuilder::write_acpi_tables, &VmBuilder::write_reset_vector,
                      &VmBuilder::load_kernel,
                      &VmBuilder::create_vcpus}) {
        // A restored VM gets its memory and registers from the snapshot (main.cpp), not from a kernel.
        if (step == &VmBuilder::load_kernel && !config_.restore.empty()) continue;
        if (auto r = (this->*step)(); !r) return std::unexpected(r.error());
    }
    return std::move(vm_);
}

Result<void> VmBuilder::create_vm() {
    auto kvm = Kvm::open();
    if (!kvm) return std::unexpected(kvm.error());
    if (auto r = kvm->require_capabilities(); !r) return r;
    auto vm = kvm->create_vm();
    if (!vm) return std::unexpected(vm.error());
    vm_ = std::make_unique<Vm>(std::move(*kvm), std::move(*vm));
    const VmFd& fd = vm_->vm_fd();
    if (auto r = fd.set_tss_address(kTssAddress); !r) return r;
    return fd.set_identity_map_address(kIdentityMapAddress);
}

// The x86 interrupt controllers (vmm/arch/x86_64/irqchip.h), after the RAM memslots.
Result<void> VmBuilder::create_irqchip() {
    auto chip = kite::create_irqchip(vm_->vm_fd(), vm_->mmio());
    if (!chip) return std::unexpected(chip.error());
    gsi_routing_ = vm_->keep(chip->routing);
    auto ioapic = chip->ioapic;
    vm_->add_device_state({"ioapic", [ioapic] { return ioapic->save_state(); },
                           [ioapic](std::span<const uint8_t> b) { return ioapic->restore_state(b); }});
    vm_->add_diagnostic([ioapic] { return ioapic->describe(); });
    return {};
}

Result<void> VmBuilder::setup_memory() {
    auto layout = x86_layout(config_.memory.size);
    if (!layout) return std::unexpected(with_context("memory", layout.error()));
    layout_ = std::move(*layout);
    GuestRam& ram = vm_->ram();
    for (const auto& [gpa, size] : layout_->ram) {
        auto block = ram.add_block(size, to_ram_mode(config_.memory.hugepages));
        if (!block) return std::unexpected(with_context("memory", block.error()));
        if (auto r = ram.map_block(*block, gpa); !r) return r;
    }
    uint32_t slot = 0;
    for (const auto& region : ram.regions()) {
        if (slot == kRegisterPagesMemslot) return fail("memory: too many RAM ranges for the memslots kept for RAM");
        if (auto r = vm_->vm_fd().set_user_memory_region(slot++, region.gpa.value(), region.size, region.host); !r)
            return r;
    }
    return map_register_pages();
}

// One read-only memslot over the windows of all virtio-mmio transports, backed by one register page
// each (devices/virtio/mmio_transport.h): the guest reads registers without an exit. Set up here, with the
// RAM memslots and before the irqchip, where a memslot change costs no SRCU wait. Without
// KVM_CAP_READONLY_MEM every register access exits, as before.
Result<void> VmBuilder::map_register_pages() {
    const size_t count = std::min<size_t>(config_.devices.size(), kVirtioMmioMaxDevices);
    if (count == 0) return {};
    const VmFd& fd = vm_->vm_fd();
    auto readonly = fd.check_extension(KVM_CAP_READONLY_MEM);
    if (!readonly || *readonly <= 0) {
        spdlog::info("KVM lacks read-only memslots: every virtio-mmio register read exits to Kite");
        return {};
    }
    const uint64_t len = count * VirtioMmioTransport::kWindowSize;
    static_assert(VirtioMmioTransport::kWindowSize == kVirtioMmioStride);  // the windows are contiguous
    void* host = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (host == MAP_FAILED) return std::unexpected(errno_error("mmap of the virtio-mmio register pages"));
    auto pages = std::make_shared<HostMapping>(host, len);
    if (auto r = fd.set_user_memory_region(kRegisterPagesMemslot, virtio_mmio_base(0).value(), len, host,
                                           KVM_MEM_READONLY);
        !r)
        return r;
    register_pages_ = std::move(pages);
    return {};
}

Result<std::shared_ptr<OutputSink>> VmBuilder::open_output(const OutputConfig& config, std::string_view what) {
    auto sink = OutputSink::open(config, what);
    if (!sink) return sink;
    vm_->keep(*sink);
    vm_->on_shutdown([out = *sink] { out->finish(std::chrono::milliseconds(200)); });
    return sink;
}

Result<std::shared_ptr<IrqFdLine>> VmBuilder::irq_line(uint32_t gsi) {
    auto fd = EventFd::create();
    if (!fd) return std::unexpected(fd.error());
    auto line = std::make_shared<IrqFdLine>(std::move(*fd), gsi);
    if (auto r = vm_->vm_fd().register_irqfd(line->fd(), gsi); !r) return std::unexpected(r.error());
    vm_->keep(line);
    return line;
}

Result<void> VmBuilder::attach_legacy_devices() {
    Vm* vm = vm_.get();

    auto serial_out = open_output(config_.serial, "serial");
    if (!serial_out) return std::unexpected(serial_out.error());
    auto serial_irq = irq_line(Serial::kCom1Irq);
    if (!serial_irq) return std::unexpected(serial_irq.error());
    auto sink = *serial_out;
    auto serial = std::make_shared<Serial>(**serial_irq, [sink](std::span<const uint8_t> b) { sink->write(b); });
    if (auto r = vm->pio().insert(serial, Serial::kCom1Port, Serial::kRegisterCount); !r) return r;
    vm->add_device_state({"serial0", [serial] { return serial->save_state(); },
                          [serial](std::span<const uint8_t> b) { return serial->restore_state(b); }});
    if (config_.serial.mode == OutputConfig::Mode::Stdio) {
        console_input_ = [serial](std::span<const uint8_t> b) { return serial->enqueue_input(b); };
        console_space_notifier_ = [serial](std::function<void()> fn) {
            serial->set_input_space_notifier(std::move(fn));
        };
    }

    auto kbd_irq = irq_line(I8042::kKeyboardIrq);
    if (!kbd_irq) return std::unexpected(kbd_irq.error());
    auto i8042 = std::make_shared<I8042>(**kbd_irq,
                                         [vm] { vm->request_stop({kExitGuestRebooted, "guest reset via the i8042"}); });
    if (auto r = vm->pio().insert(i8042, I8042::kBasePort, I8042::kPortSpan); !r) return r;

    auto pm = std::make_shared<AcpiPm>([vm] { vm->request_stop({0, "guest powered off (ACPI S5)"}); },
                                       [vm] { vm->request_stop({kExitGuestRebooted, "guest reset (ACPI reset register)"}); });
    if (auto r = vm->pio().insert(pm, AcpiPm::kBasePort, AcpiPm::kPortSpan); !r) return r;

    auto debug_exit = std::make_shared<DebugExit>([vm](uint8_t status) {
        vm->request_stop({status, "guest wrote " + std::to_string(status) + " to the debug-exit port"});
    });
    if (auto r = vm->pio().insert(debug_exit, DebugExit::kPort, DebugExit::kPortSpan); !r) return r;

    // A panicking kernel tells pvpanic before it reboots (panic=-1) or waits (panic=0): either way the
    // run ends with the panic's own status. With a kdump kernel loaded it runs on to take the dump.
    auto pvpanic = std::make_shared<Pvpanic>([vm](uint8_t events) {
        if (events & Pvpanic::kPanicked) {
            vm->request_stop({kExitGuestPanicked, "the guest kernel panicked (pvpanic)"});
        } else if (vm->note_guest_panic()) {  // logged once: the guest may write the port in a loop
            spdlog::warn("the guest kernel panicked and starts its crash kernel (pvpanic); Kite will exit {} when "
                         "the VM ends", kExitGuestPanicked);
        }
    });
    return vm->pio().insert(pvpanic, Pvpanic::kPort, Pvpanic::kPortSpan);
}

Result<void> VmBuilder::write_acpi_tables() {
    AcpiConfig acpi;
    acpi.num_cpus = config_.vcpus;
    if (config_.boot.virtio_discovery == VirtioDiscovery::Acpi) acpi.virtio = virtio_acpi_;
    if (pci_root_) acpi.pci = AcpiConfig::PciHostBridge{pci_root_->mmio_base(), pci_root_->mmio_size()};
    acpi.base = GuestAddress(kAcpiTablesBase);
    auto tables = build_acpi_tables(acpi);
    if (!tables) return std::unexpected(with_context("ACPI tables", tables.error()));
    for (const auto& [addr, bytes] : tables->blobs) {
        if (addr.value() < kAcpiTablesBase || addr.value() + bytes.size() > kAcpiTablesBase + kAcpiTablesMax)
            return fail("ACPI tables do not fit in the BIOS area below 1 MiB");
        if (auto r = vm_->ram().write(addr, std::as_bytes(std::span(bytes))); !r) return r;
    }
    rsdp_ = tables->rsdp;
    return {};
}

// With hardware-reduced ACPI and no EFI, Linux reboots through the BIOS: it drops to real mode and jumps
// to f000:fff0 (arch/x86/kernel/reboot.c, BOOT_EFI then BOOT_BIOS). Kite has no BIOS, so a stub there
// writes the ACPI reset register, which ends the VM as a reset, instead of running whatever RAM holds.
Result<void> VmBuilder::write_reset_vector() {
    const uint8_t stub[] = {
        0xb0, kAcpiResetValue,                                                   // mov al, kAcpiResetValue
        0xba, uint8_t(kAcpiResetPort & 0xff), uint8_t(kAcpiResetPort >> 8),      // mov dx, kAcpiResetPort
        0xee,                                                                    // out dx, al
        0xf4,                                                                    // hlt
        0xeb, 0xfd,                                                              // jmp hlt
    };
    return vm_->ram().write(GuestAddress(kResetVector), std::as_bytes(std::span(stub)));
}

Result<void> VmBuilder::load_kernel() {
    boot::BootInputs in;
    in.kernel = std::filesystem::path(config_.boot.kernel);
    if (!config_.boot.initrd.empty()) in.initrd = std::filesystem::path(config_.boot.initrd);
    in.cmdline = config_.boot.cmdline;
    if (config_.boot.virtio_discovery == VirtioDiscovery::Cmdline) {
        // The virtio_mmio driver's syntax: <size>@<base>:<irq>, one parameter per transport.
        for (const auto& t : virtio_acpi_)
            in.cmdline += fmt::format(" virtio_mmio.device={:#x}@{:#x}:{}", t.size, t.base, t.irq);
    }
    in.protocol = to_boot_protocol(config_.boot.protocol);
    for (const auto& range : layout_->ram) in.ram.push_back(range);
    in.rsdp = rsdp_;
    auto state = boot::load_linux(vm_->ram(), in);
    if (!state) return std::unexpected(state.error());  // the loader's messages name the file
    boot_state_ = *state;
    return {};
}

Result<void> VmBuilder::create_vcpus() {
    Vm* vm = vm_.get();
    VcpuHooks hooks{[vm](StopReason r) { vm->request_stop(std::move(r)); }, {}, {}, {}};
    // A shared-memory window is the one place a guest access can fault in the host's memory (a back-end
    // shrank its file, a write to an unmapped range): repaired there, the vCPU runs on.
    if (shm_memslots_) hooks.memory_fault = [memslots = shm_memslots_] { return memslots->repair() > 0; };
    auto vcpus = std::make_unique<VcpuSet>(vm->pio(), vm->mmio(), std::move(hooks));
    auto supported = vm->kvm().supported_cpuid();
    if (!supported) return std::unexpected(supported.error());
    CpuTopology topology{config_.vcpus};
    for (unsigned i = 0; i < config_.vcpus; ++i) {
        auto vcpu = vm->vm_fd().create_vcpu(i);
        if (!vcpu) return std::unexpected(vcpu.error());
        if (auto r = setup_vcpu_common(*vcpu, vcpu_cpuid(*supported, i, topology)); !r)
            return std::unexpected(with_context("vCPU " + std::to_string(i), r.error()));
        if (i == 0 && boot_state_)
            if (auto r = setup_boot_vcpu(*vcpu, *boot_state_); !r) return r;
        vcpus->add(std::move(*vcpu));
    }
    vm->set_vcpus(std::move(vcpus));

    if (console_input_) {
        auto console = std::make_shared<HostConsole>(vm->io(), console_input_, [vm] {
            vm->request_stop({0, "stopped from the console (Ctrl-A x)"});
        });
        HostConsole* raw = vm->keep(console);
        console_space_notifier_([vm, raw] { asio::post(vm->io(), [raw] { raw->input_space_available(); }); });
        raw->start();
    }
    return {};
}

}  // namespace kite
