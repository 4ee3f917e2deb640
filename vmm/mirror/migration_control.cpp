#include "vmm/mirror/migration_control.h"

#include <algorithm>
#include <string>

#include "vmm/kvm/kvm.h"

namespace kite {

namespace {
constexpr uint64_t kPage = 4096;
}

Result<void> validate_windows(GuestMemory& main_mem, std::span<const MirrorWindow> windows) {
    if (windows.size() > kMaxGuestWindows) return fail("migration windows: more than 8");
    for (size_t i = 0; i < windows.size(); ++i) {
        const auto& w = windows[i];
        std::string name = "migration window " + std::to_string(i);
        if (w.length == 0 || w.length % kPage != 0 || !w.main_gpa.is_aligned(kPage) ||
            !w.mirror_gpa.is_aligned(kPage))
            return fail(name + ": not page aligned or empty");
        if (!main_mem.span(w.main_gpa, w.length))
            return fail(name + ": main range is not inside one RAM region");
        uint64_t m = w.mirror_gpa.value();
        if (m < kMirrorWindowBase || m >= kMirrorWindowLimit || w.length > kMirrorWindowLimit - m)
            return fail(name + ": mirror range outside [4 GiB, 64 TiB)");
        for (size_t j = 0; j < i; ++j)
            if (ranges_overlap(m, w.length, windows[j].mirror_gpa.value(), windows[j].length))
                return fail(name + ": mirror range overlaps window " + std::to_string(j));
    }
    return {};
}

Result<void> MigrationControl::handle_migration_control_write(GuestMemory& main_mem, uint64_t value,
                                                              GuestAddress descriptor_gpa) {
    if (value > 1) return fail("MSR_KVM_MIGRATION_CONTROL: reserved bits set");  // guest-controlled
    if (value == 0 || descriptor_gpa.value() == 0) {
        allowed_ = value == 1;
        return {};
    }
    auto desc = main_mem.read_obj<MigrationDescriptor>(descriptor_gpa);  // guest-controlled
    if (!desc) return fail("migration descriptor is not in guest RAM");
    if (desc->magic != kMigrationDescriptorMagic) return fail("migration descriptor: bad magic");
    if (desc->count > kMaxGuestWindows) return fail("migration descriptor: more than 8 entries");
    std::vector<MirrorWindow> windows;
    for (uint32_t i = 0; i < desc->count; ++i) {
        const auto& e = desc->entries[i];
        windows.push_back({GuestAddress(e.main_gpa), e.length, GuestAddress(e.mirror_gpa)});
    }
    if (auto ok = validate_windows(main_mem, windows); !ok) return ok;
    windows_ = std::move(windows);
    allowed_ = true;
    return {};
}

kvm_msr_filter migration_control_msr_filter(uint8_t& bitmap) {
    bitmap = 0;  // bit 0 clear: MSR base + 0 denied, so it exits to user space
    kvm_msr_filter filter{};
    filter.flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
    filter.ranges[0].flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
    filter.ranges[0].base = kMsrKvmMigrationControl;
    filter.ranges[0].nmsrs = 1;
    filter.ranges[0].bitmap = &bitmap;
    return filter;
}

Result<void> install_migration_control_filter(const VmFd& main_vm) {
    auto cap = main_vm.check_extension(KVM_CAP_X86_USER_SPACE_MSR);
    if (!cap) return std::unexpected(cap.error());
    if (*cap <= 0) return unsupported("KVM lacks KVM_CAP_X86_USER_SPACE_MSR (needed for MSR_KVM_MIGRATION_CONTROL)");
    if (auto ok = main_vm.enable_cap(KVM_CAP_X86_USER_SPACE_MSR, KVM_MSR_EXIT_REASON_FILTER); !ok) return ok;
    uint8_t bitmap = 0;
    kvm_msr_filter filter = migration_control_msr_filter(bitmap);
    return main_vm.set_msr_filter(filter);
}

}  // namespace kite
