#include "vmm/snapshot/vm_snapshot.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "base/fd.h"
#include "vmm/arch/x86_64/vm_state.h"

namespace kite {

namespace {

constexpr uint64_t kPage = kMirrorPageSize;

// Guest RAM is borrowed, not copied: the VM stays paused until the snapshot is written.
Result<void> capture_memory_direct(GuestRam& ram, SnapshotData& out) {
    for (size_t i = 0; i < ram.block_count(); ++i) {
        const RamBlock& b = ram.block(i);
        auto gpa = ram.gpa_of(b.ram_offset());
        std::optional<uint64_t> at = gpa ? std::optional<uint64_t>(gpa->value()) : std::nullopt;
        auto block = plain_memory_block(b.ram_offset().value(), {b.host(), b.size()}, at, /*copy=*/false, b.fd());
        if (!block) return std::unexpected(block.error());
        out.memory.push_back(std::move(*block));
    }
    return {};
}

Result<void> capture_memory_mirror(Vm& vm, std::unique_ptr<MirrorVm>& mirror, const MirrorKey& key,
                                   SnapshotData& out) {
    if (!mirror) {
        MirrorOptions options;
        options.key = key;
        auto m = MirrorVm::create(vm.kvm(), vm.vm_fd(), vm.ram(), options);
        if (!m) return std::unexpected(with_context("mirror VM", m.error()));
        mirror = std::move(*m);
    }
    GuestRam& ram = vm.ram();
    for (size_t i = 0; i < ram.block_count(); ++i) {
        const RamBlock& b = ram.block(i);
        MemoryBlockState state;
        state.ram_offset = b.ram_offset().value();
        state.size = b.size();
        if (auto gpa = ram.gpa_of(b.ram_offset())) state.gpa = gpa->value();
        state.encoding = PageEncoding::Sealed;
        // Every page: under SEV the host could not tell which pages are zero.
        std::vector<uint64_t> offsets(b.size() / kPage);
        for (size_t p = 0; p < offsets.size(); ++p) offsets[p] = state.ram_offset + p * kPage;
        auto records = mirror->export_pages(offsets);
        if (!records) {
            mirror.reset();  // a failed mirror refuses further commands; the next snapshot makes a new one
            return std::unexpected(records.error());
        }
        state.records = std::move(*records);
        out.memory.push_back(std::move(state));
    }
    out.flags |= kSnapshotFlagSealedMemory;
    return {};
}

// Block i of the snapshot against block i of this VM: same RAM offset, size and GPA (or both unmapped).
Result<void> check_block_fits(GuestRam& ram, size_t i, const MemoryBlockState& m) {
    if (i >= ram.block_count())
        return fail("snapshot has more than " + std::to_string(ram.block_count()) +
                    " RAM blocks (give the same --memory as the snapshotted VM)");
    const RamBlock& b = ram.block(i);
    auto gpa = ram.gpa_of(b.ram_offset());
    const bool same_gpa = gpa ? (m.gpa && *m.gpa == gpa->value()) : !m.gpa;
    if (m.ram_offset != b.ram_offset().value() || m.size != b.size() || !same_gpa)
        return fail("snapshot RAM block " + std::to_string(i) + " (" + std::to_string(m.size >> 20) +
                    " MiB) does not match this VM's block (" + std::to_string(b.size() >> 20) +
                    " MiB): give the same --memory as the snapshotted VM");
    return {};
}

Result<void> check_memory_fits(GuestRam& ram, const SnapshotData& data) {
    if (data.memory.size() != ram.block_count())
        return fail("snapshot has " + std::to_string(data.memory.size()) + " RAM blocks, this VM has " +
                    std::to_string(ram.block_count()) + " (give the same --memory as the snapshotted VM)");
    for (size_t i = 0; i < ram.block_count(); ++i) {
        const MemoryBlockState& m = data.memory[i];
        if (auto r = check_block_fits(ram, i, m); !r) return r;
        if (m.encoding == PageEncoding::Sealed) {
            if (m.records.size() != m.size / kPage)
                return fail("snapshot RAM block " + std::to_string(i) + ": " + std::to_string(m.records.size()) +
                            " sealed records for " + std::to_string(m.size / kPage) + " pages");
            for (size_t p = 0; p < m.records.size(); ++p)
                if (m.records[p].ram_offset != m.ram_offset + p * kPage || m.records[p].flags != 0)
                    return fail("snapshot RAM block " + std::to_string(i) + ": sealed record " + std::to_string(p) +
                                " is not for page " + std::to_string(p) + " of the block");
        }
        if ((m.encoding == PageEncoding::Sealed) != ((data.flags & kSnapshotFlagSealedMemory) != 0))
            return fail("snapshot RAM block " + std::to_string(i) + ": encoding disagrees with the header flags");
    }
    return {};
}

Result<void> check_devices_fit(const Vm& vm, const SnapshotData& data) {
    for (const auto& d : data.devices) {
        bool known = false;
        for (const auto& h : vm.device_states()) known = known || h.name == d.name;
        if (!known) return fail("snapshot has state for device '" + d.name + "', which this VM does not have");
    }
    for (const auto& h : vm.device_states()) {
        bool present = false;
        for (const auto& d : data.devices) present = present || h.name == d.name;
        if (!present) return fail("snapshot has no state for device '" + h.name + "'");
    }
    return {};
}

}  // namespace

MemoryTarget restore_target(Vm& vm) {
    return [&vm, next = size_t{0}](const MemoryBlockState& head) mutable -> Result<std::span<std::byte>> {
        const size_t i = next++;
        if (auto r = check_block_fits(vm.ram(), i, head); !r) return std::unexpected(r.error());
        const RamBlock& b = vm.ram().block(i);
        return std::span<std::byte>(b.host(), b.size());
    };
}

std::string snapshot_refusal(const VmConfig& config) {
    for (const DeviceConfig& d : config.devices)
        if (std::holds_alternative<VhostUserBlkConfig>(d) || std::holds_alternative<VhostUserFsConfig>(d) ||
            std::holds_alternative<VhostUserGenericConfig>(d))
            return std::string("vhost-user device '") + device_kind_name(d) +
                   "' cannot be snapshotted or restored: its back-end holds the queue state";
    return "";
}

Result<SnapshotData> capture_snapshot(Vm& vm, MemoryVia via, std::unique_ptr<MirrorVm>& mirror, const MirrorKey& key) {
    SnapshotData data;
    // Devices first: saving a virtio transport completes the device's requests in flight (virtio-blk's
    // io_uring I/O), which writes used rings and raises interrupts. Taken before memory and vCPU state,
    // every popped chain is in the saved used rings and no completion lands after the capture.
    for (const auto& h : vm.device_states()) data.devices.push_back({h.name, h.save()});
    VcpuSet& vcpus = vm.vcpus();
    if (vcpus.size() == 0) return fail("snapshot: the VM has no vCPUs");
    auto msrs = readable_msrs(vm.kvm(), vcpus.vcpu(0));
    if (!msrs) return std::unexpected(msrs.error());
    auto xsave = xsave_size(vm.vm_fd());
    if (!xsave) return std::unexpected(xsave.error());
    for (size_t i = 0; i < vcpus.size(); ++i) {
        auto state = capture_vcpu(vcpus.vcpu(i), static_cast<uint32_t>(i), *msrs, *xsave);
        if (!state) return std::unexpected(state.error());
        data.vcpus.push_back(std::move(*state));
    }
    auto level = capture_vm_level(vm.vm_fd());
    if (!level) return std::unexpected(level.error());
    data.clock = level->clock;
    auto memory = via == MemoryVia::Direct ? capture_memory_direct(vm.ram(), data)
                                           : capture_memory_mirror(vm, mirror, key, data);
    if (!memory) return std::unexpected(memory.error());
    return data;
}

Result<void> apply_snapshot(Vm& vm, const SnapshotData& data, const std::optional<MirrorKey>& key) {
    VcpuSet& vcpus = vm.vcpus();
    if (data.vcpus.size() != vcpus.size())
        return fail("snapshot has " + std::to_string(data.vcpus.size()) + " vCPUs, this VM has " +
                    std::to_string(vcpus.size()) + " (give the same --vcpus as the snapshotted VM)");
    for (size_t i = 0; i < data.vcpus.size(); ++i)
        if (data.vcpus[i].index != i) return fail("snapshot vCPU sections are not numbered 0..N-1 in order");
    if (!data.clock) return fail("snapshot lacks the clock section");
    if (auto r = check_memory_fits(vm.ram(), data); !r) return r;
    if (auto r = check_devices_fit(vm, data); !r) return r;
    const bool sealed = data.flags & kSnapshotFlagSealedMemory;
    if (sealed && !key) return fail("the snapshot's memory is sealed by the mirror helper and no key was given");

    GuestRam& ram = vm.ram();
    if (sealed) {
        MirrorOptions options;
        options.key = *key;
        auto mirror = MirrorVm::create(vm.kvm(), vm.vm_fd(), ram, options);
        if (!mirror) return std::unexpected(with_context("mirror VM", mirror.error()));
        for (const auto& m : data.memory)
            if (auto r = (*mirror)->import_pages(m.records); !r)
                return fail("restoring memory through the mirror: " + r.error().message +
                            " (wrong key file, or a tampered snapshot)");
    } else {
        for (size_t i = 0; i < ram.block_count(); ++i) {
            const RamBlock& b = ram.block(i);
            if (!data.memory[i].in_place) restore_plain_memory_block(data.memory[i], {b.host(), b.size()});
        }
    }

    if (auto r = restore_vm_level(vm.vm_fd(), VmLevelState{*data.clock}); !r) return r;
    auto xsave = xsave_size(vm.vm_fd());
    if (!xsave) return std::unexpected(xsave.error());
    for (size_t i = 0; i < data.vcpus.size(); ++i)
        if (auto r = restore_vcpu(vcpus.vcpu(i), data.vcpus[i], *xsave); !r) return r;
    for (const auto& h : vm.device_states())
        for (const auto& d : data.devices)
            if (d.name == h.name)
                if (auto r = h.restore(d.data); !r) return fail("device '" + h.name + "': " + r.error().message);
    return {};
}

}  // namespace kite
