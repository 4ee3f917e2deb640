// Option 2 of the mirror design: the main VM's guest tells the VMM which of its memory the helper must see,
// as (main GPA, length, mirror GPA) tuples, on a write of 1 to MSR_KVM_MIGRATION_CONTROL.
//
// Guest protocol (defined here): the guest fills a MigrationDescriptor in its own RAM, puts the
// descriptor's GPA in RBX, and executes WRMSR 0x4b564d08 with EDX:EAX = 1. A write with RBX = 0 only sets
// the "migration allowed" bit. Writes of anything but 0 or 1 are refused (#GP), as KVM does.
// The write reaches user space through an MSR filter (install_migration_control_filter); the integrator's
// vCPU loop calls MigrationControl::handle_migration_control_write with the value and
// migration_descriptor_gpa(regs), and sets the exit's error byte when it fails.
// The tuples are kept here (the mirror is created later, on demand) and installed with
// MirrorVm::install_windows().
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <vector>

#include "base/error.h"
#include "memory/address.h"
#include "memory/guest_memory.h"

namespace kite {

class VmFd;

inline constexpr uint32_t kMsrKvmMigrationControl = 0x4b564d08;
inline constexpr uint32_t kMigrationDescriptorMagic = 0x44474d4b;  // "KMGD" little-endian
inline constexpr uint32_t kMaxGuestWindows = 8;
// Option-2 mirror GPAs live in [kMirrorWindowBase, kMirrorWindowLimit) (and below the mirror's high_base).
inline constexpr uint64_t kMirrorWindowBase = 1ull << 32;
inline constexpr uint64_t kMirrorWindowLimit = 1ull << 46;

struct MigrationDescriptorEntry {
    uint64_t main_gpa;
    uint64_t length;
    uint64_t mirror_gpa;
};
// As the guest lays it out at the GPA in RBX (little-endian).
struct MigrationDescriptor {
    uint32_t magic;
    uint32_t count;  // entries used, at most kMaxGuestWindows
    MigrationDescriptorEntry entries[kMaxGuestWindows];
};
static_assert(sizeof(MigrationDescriptor) == 8 + 24 * kMaxGuestWindows);

struct MirrorWindow {
    GuestAddress main_gpa;
    uint64_t length;
    GuestAddress mirror_gpa;
};

// Checks tuples a guest sent: page-aligned, non-empty, main range inside one RAM region of `main_mem`,
// mirror range inside [kMirrorWindowBase, kMirrorWindowLimit), mirror ranges not overlapping.
Result<void> validate_windows(GuestMemory& main_mem, std::span<const MirrorWindow> windows);

class MigrationControl {
public:
    Result<void> handle_migration_control_write(GuestMemory& main_mem, uint64_t value,  // guest-controlled
                                                GuestAddress descriptor_gpa);          // guest-controlled
    bool migration_allowed() const { return allowed_; }
    // For a guest RDMSR of the same MSR.
    uint64_t msr_value() const { return allowed_ ? 1 : 0; }
    const std::vector<MirrorWindow>& windows() const { return windows_; }

private:
    bool allowed_ = false;
    std::vector<MirrorWindow> windows_;
};

// Where the guest put its descriptor (RBX at the WRMSR exit).
inline GuestAddress migration_descriptor_gpa(const kvm_regs& regs) { return GuestAddress(regs.rbx); }

// An MSR filter that allows every MSR except reads and writes of MSR_KVM_MIGRATION_CONTROL, which exit to
// user space. `bitmap` must outlive the KVM_X86_SET_MSR_FILTER call (the filter points into it).
kvm_msr_filter migration_control_msr_filter(uint8_t& bitmap);

// Enables KVM_CAP_X86_USER_SPACE_MSR with KVM_MSR_EXIT_REASON_FILTER on the main VM and installs the filter
// above. Call before the main VM's vCPUs run.
Result<void> install_migration_control_filter(const VmFd& main_vm);

}  // namespace kite
