// VmBuilder's device steps: one attach() per device kind in the config's `devices:` list, each ending in
// add_transport(), which gives the device a virtio-mmio transport in the next slot of the 32-bit MMIO
// hole, wires its queue notifications to KVM ioeventfds and its interrupt to a KVM irqfd, and records the
// transport for the ACPI DSDT (LNRO0005, how the stock kernel finds virtio-mmio devices). A vhost-user
// device with transport: pci ends in add_pci_transport() instead: a virtio-pci function on the PCI root,
// which wires its own ioeventfds and MSI-X irqfds through GsiRouting as the guest programs them.
//
// Host stdin goes to the serial port, unless a virtio console writes to stdio: then it goes to that
// console (the last one configured), as with QEMU's virtconsole on stdio.
#include <fmt/format.h>
#include <linux/kvm.h>
#include <spdlog/spdlog.h>

#include <cstdio>

#include "base/asio_loop.h"
#include "devices/pci/pci_root.h"
#include "devices/virtio/block.h"
#include "devices/virtio/console.h"
#include "devices/virtio/mmio_transport.h"
#include "devices/virtio/net.h"
#include "devices/virtio/pci_transport.h"
#include "devices/virtio/rng.h"
#include "vhost/device_kinds.h"
#include "vhost/vhost_user_device.h"
#include "vmm/builder.h"
#include "vmm/kvm/gsi_routing.h"
#include "vmm/kvm/shm_memslots.h"
#include "vmm/output_sink.h"

namespace kite {

namespace {

Error in_device(const Error& e, const DeviceConfig& device, size_t index) {
    return Error{fmt::format("device {} ({}): {}", index, device_kind_name(device), e.message), e.code};
}

}  // namespace

Result<void> VmBuilder::attach_devices() {
    for (size_t i = 0; i < config_.devices.size(); ++i) {
        const DeviceConfig& device = config_.devices[i];
        auto attached = std::visit([this](const auto& d) { return attach(d); }, device);
        if (!attached) return std::unexpected(in_device(attached.error(), device, i));
    }
    return {};
}

Result<std::shared_ptr<VirtioMmioTransport>> VmBuilder::add_transport(std::shared_ptr<VirtioDevice> device) {
    const unsigned index = static_cast<unsigned>(virtio_acpi_.size());
    const auto irq = virtio_mmio_irq(index);
    if (!irq)
        return fail(fmt::format("too many virtio devices: {} fit (one I/O APIC pin each, pins 5 to 23)", index));
    const GuestAddress base = virtio_mmio_base(index);
    std::shared_ptr<std::byte> page;
    if (register_pages_ && (index + 1) * VirtioMmioTransport::kWindowSize <= register_pages_->size())
        page = std::shared_ptr<std::byte>(register_pages_, register_pages_->data() + index * VirtioMmioTransport::kWindowSize);
    auto transport = VirtioMmioTransport::create(std::move(device), vm_->ram(), vm_->io(), std::move(page));
    if (!transport) return std::unexpected(transport.error());
    const VmFd& fd = vm_->vm_fd();
    for (unsigned q = 0; q < (*transport)->num_queues(); ++q) {
        if (auto ok = fd.register_ioeventfd((*transport)->kick_fd(q), base.value() + VirtioMmioTransport::kQueueNotifyOffset,
                                            4, q, false);
            !ok)
            return std::unexpected(ok.error());
    }
    if (int sink = (*transport)->used_ack_sink_fd(); sink >= 0)
        if (auto ok = fd.register_ioeventfd(sink, base.value() + VirtioMmioTransport::kInterruptAckOffset, 4,
                                            VirtioMmioTransport::kInterruptUsedBuffer, false);
            !ok)
            return std::unexpected(ok.error());
    if (auto ok = fd.register_irqfd((*transport)->irq_fd(), *irq); !ok) return std::unexpected(ok.error());
    if (auto ok = vm_->mmio().insert(*transport, base.value(), VirtioMmioTransport::kWindowSize); !ok)
        return std::unexpected(ok.error());
    virtio_acpi_.push_back({base.value(), static_cast<uint32_t>(VirtioMmioTransport::kWindowSize), *irq});
    // Snapshots refuse vhost-user devices before reaching these (vmm/snapshot/vm_snapshot.h snapshot_refusal).
    vm_->add_device_state({fmt::format("virtio{}", index), [t = *transport] { return t->save_state(); },
                           [t = *transport](std::span<const uint8_t> b) { return t->restore_state(b); }});
    vm_->add_diagnostic([t = *transport] { return t->describe(); });
    spdlog::info("virtio device id {} at {:#x}, IRQ {}", (*transport)->device().device_id(), base.value(), *irq);
    return transport;
}

Result<void> VmBuilder::attach(const BlockConfig& config) {
    BlockOptions options;
    options.path = config.path;
    options.read_only = config.readonly;
    options.serial = config.id;
    options.try_io_uring = config.engine != BlockConfig::Engine::Sync;
    auto device = BlockDevice::open(options);
    if (!device) return std::unexpected(device.error());
    if (auto t = add_transport(*device); !t) return std::unexpected(t.error());
    return {};
}

Result<void> VmBuilder::attach(const NetConfig& config) {
    // Without a configured MAC: locally administered 52:54:00 (QEMU's prefix) + "KI" + the device index,
    // stable across runs so guest network configuration keyed on the MAC keeps working.
    MacAddress mac = config.mac.value_or(
        MacAddress{0x52, 0x54, 0x00, 0x4b, 0x49, static_cast<uint8_t>(virtio_acpi_.size())});
    auto device = NetDevice::open_tap(config.tap, mac);
    if (!device) return std::unexpected(device.error());
    if (auto t = add_transport(*device); !t) return std::unexpected(t.error());
    return {};
}

Result<void> VmBuilder::attach(const RngConfig&) {
    if (auto t = add_transport(std::make_shared<RngDevice>()); !t) return std::unexpected(t.error());
    return {};
}

Result<void> VmBuilder::attach(const ConsoleConfig& config) {
    auto sink = open_output(config.output, "console");
    if (!sink) return std::unexpected(sink.error());
    auto device = std::make_shared<ConsoleDevice>([out = *sink](std::span<const std::byte> bytes) {
        out->write(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
    });
    if (auto t = add_transport(device); !t) return std::unexpected(t.error());
    if (config.output.mode == OutputConfig::Mode::Stdio) {
        // The console buffers up to ConsoleDevice::kMaxPendingInput bytes until the guest reads; a
        // typist never gets there, so there is no backpressure to report.
        console_input_ = [device](std::span<const uint8_t> bytes) {
            device->enqueue_input(std::as_bytes(bytes));
            return bytes.size();
        };
        console_space_notifier_ = [](std::function<void()>) {};
    }
    return {};
}

Result<void> VmBuilder::attach(const VhostUserBlkConfig& config) {
    auto device = vhost::vhost_user_blk_config(config.socket);
    device.connect_timeout = std::chrono::milliseconds(config.common.reconnect_timeout_ms);
    return attach_vhost_user(std::move(device), config.common);
}

Result<void> VmBuilder::attach(const VhostUserFsConfig& config) {
    auto device = vhost::vhost_user_fs_config(config.socket, config.tag, config.dax_size);
    if (!device) return std::unexpected(device.error());
    device->queue_size = config.queue_size;
    device->connect_timeout = std::chrono::milliseconds(config.common.reconnect_timeout_ms);
    return attach_vhost_user(std::move(*device), config.common);
}

Result<void> VmBuilder::attach(const VhostUserGenericConfig& config) {
    auto device = vhost::vhost_user_generic_config(config.socket, config.virtio_id, config.num_queues);
    device.queue_size = config.queue_size;
    device.local_shm_sizes = config.shm_sizes;
    device.config_size = config.config_size;
    device.connect_timeout = std::chrono::milliseconds(config.common.reconnect_timeout_ms);
    return attach_vhost_user(std::move(device), config.common);
}

Result<void> VmBuilder::attach_vhost_user(vhost::VhostUserDeviceConfig config, const VhostUserCommon& common) {
    // Guest RAM is memfd-backed and MAP_SHARED (memory/ram_block.cpp), so the back-end maps the very
    // pages the guest uses: each mapped RAM region is handed over with its memfd.
    std::vector<vhost::VhostMemoryRegion> memory;
    for (const MappedRegion& region : vm_->ram().regions())
        memory.push_back({region.gpa, region.size, region.host, BorrowedFd(region.fd), 0});

    if (!shm_allocator_) shm_allocator_.emplace(*layout_);
    auto base = shm_allocator_->next().align_up(kShmWindowAlign);
    if (!base) return fail("no guest-physical space left for shared memory regions");
    config.shm_base = *base;
    config.reconnect_timeout = config.connect_timeout;  // reconnect-timeout-ms bounds the first wait and every reconnect
    config.peer.uid = common.peer_uid;
    ShmMemslots::Note trace;
    if (config_.vhost_trace) {
        std::string socket = config.socket_path;
        trace = [socket](std::string_view line) { fmt::print(stderr, "vhost-user {}: {}\n", socket, line); };
        config.trace = trace;
    }

    auto connected = vhost::VhostUserDevice::connect(std::move(config), std::move(memory), vm_->io());
    if (!connected) return std::unexpected(connected.error());
    std::shared_ptr<vhost::VhostUserDevice> device = std::move(*connected);

    if (uint64_t span = device->shm_span(); span > 0) {
        auto at = shm_allocator_->allocate(span);
        if (!at) return std::unexpected(at.error());
        if (*at != *base) return fail("shared memory regions were placed inconsistently");  // cannot happen
        if (auto ok = shm_memslots(); !ok) return std::unexpected(ok.error());
        for (const ShmRegion& region : device->shm_regions()) {
            ShmWindow* window = device->shm_table().window(region.id);
            if (!window) return fail(fmt::format("shared memory region {} has no host window", region.id));
            shm_memslots_->watch(*window, region.base, trace);
        }
    }
    if (common.transport == VhostUserCommon::Transport::Pci) {
        if (auto t = add_pci_transport(device); !t) return std::unexpected(t.error());
        return {};
    }
    if (auto t = add_transport(device); !t) return std::unexpected(t.error());
    return {};
}

Result<std::shared_ptr<VirtioPciTransport>> VmBuilder::add_pci_transport(std::shared_ptr<VirtioDevice> device) {
    if (!pci_root_) {
        auto root = std::make_shared<pci::PciRoot>(kPciMmioBase, kVirtioMmioBase - kPciMmioBase);
        if (auto ok = vm_->pio().insert(root->config_ports(), pci::kConfigAddressPort, pci::kConfigPortsLength); !ok)
            return std::unexpected(ok.error());
        if (auto ok = vm_->mmio().insert(root->mmio_window(), root->mmio_base(), root->mmio_size()); !ok)
            return std::unexpected(ok.error());
        pci_root_ = root;
        vm_->keep(root);
    }
    auto bar = pci_root_->allocate_bar(VirtioPciTransport::kBar0Size);
    if (!bar) return std::unexpected(bar.error());
    auto gsi = gsi_routing_->allocate(static_cast<uint32_t>(device->queue_max_sizes().size() + 1));
    if (!gsi) return std::unexpected(gsi.error());
    auto transport = VirtioPciTransport::create(std::move(device), vm_->ram(), vm_->io(), *gsi_routing_, *bar, *gsi);
    if (!transport) return std::unexpected(transport.error());
    auto slot = pci_root_->add(*transport);
    if (!slot) return std::unexpected(slot.error());
    vm_->add_diagnostic([t = *transport] { return t->describe(); });
    // Like the virtio-mmio transports' states (snapshots refuse vhost-user devices before reaching these).
    vm_->add_device_state({fmt::format("virtio-pci-{:02x}", *slot), [t = *transport] { return t->save_state(); },
                           [t = *transport](std::span<const uint8_t> b) { return t->restore_state(b); }});
    spdlog::info("virtio device id {} on PCI 00:{:02x}.0, BAR 0 at {:#x}, MSI-X vectors on GSIs {}-{}",
                 (*transport)->device().device_id(), *slot, *bar, *gsi, *gsi + (*transport)->msix_vectors() - 1);
    return transport;
}

Result<void> VmBuilder::shm_memslots() {
    if (shm_memslots_) return {};
    const VmFd& fd = vm_->vm_fd();
    auto slots = fd.check_extension(KVM_CAP_NR_MEMSLOTS);
    if (!slots) return std::unexpected(slots.error());
    if (*slots <= static_cast<int>(kFirstShmMemslot))
        return fail(fmt::format("KVM offers {} memslots; shared memory regions need more than {}", *slots,
                                kFirstShmMemslot));
    auto readonly = fd.check_extension(KVM_CAP_READONLY_MEM);
    shm_memslots_ = std::make_shared<ShmMemslots>(fd, kFirstShmMemslot, static_cast<uint32_t>(*slots),
                                                  readonly && *readonly > 0);
    vm_->keep(shm_memslots_);
    return {};
}

}  // namespace kite
