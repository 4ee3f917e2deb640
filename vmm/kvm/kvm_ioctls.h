// Every ioctl request Kite sends to KVM (the wrappers in kvm.cpp, vm_state.cpp and the mirror VM through
// them). The seccomp filter (vmm/seccomp.cpp) allows exactly these on a running Kite: the mirror VM is
// created at run time and snapshots read every state, so each one is needed after the filter goes in. A
// new wrapper's request belongs here, or the filter ends Kite the first time it is sent (naming it).
#pragma once

#include <linux/kvm.h>

#include <array>

#include "vmm/kvm/kvm_uapi.h"

namespace kite {

inline constexpr std::array kKvmIoctlRequests = {
    // the hot one first: the filter compares in order
    static_cast<unsigned long>(KVM_RUN),
    // /dev/kvm
    static_cast<unsigned long>(KVM_GET_API_VERSION), static_cast<unsigned long>(KVM_CHECK_EXTENSION),
    static_cast<unsigned long>(KVM_GET_VCPU_MMAP_SIZE), static_cast<unsigned long>(KVM_CREATE_VM),
    uapi::kGetMsrIndexList, uapi::kGetSupportedCpuid,
    // VM fd
    static_cast<unsigned long>(KVM_CREATE_VCPU), static_cast<unsigned long>(KVM_SET_USER_MEMORY_REGION),
    uapi::kSetGsiRouting, static_cast<unsigned long>(KVM_SET_TSS_ADDR),
    static_cast<unsigned long>(KVM_SET_IDENTITY_MAP_ADDR), static_cast<unsigned long>(KVM_IRQFD),
    static_cast<unsigned long>(KVM_IOEVENTFD), static_cast<unsigned long>(KVM_ENABLE_CAP),
    static_cast<unsigned long>(KVM_GET_CLOCK), static_cast<unsigned long>(KVM_SET_CLOCK),
    static_cast<unsigned long>(KVM_GET_DIRTY_LOG), static_cast<unsigned long>(KVM_X86_SET_MSR_FILTER),
    // vCPU fd: state for snapshots, restore and the mirror VM
    static_cast<unsigned long>(KVM_GET_REGS), static_cast<unsigned long>(KVM_SET_REGS),
    static_cast<unsigned long>(KVM_GET_SREGS), static_cast<unsigned long>(KVM_SET_SREGS),
    static_cast<unsigned long>(KVM_GET_FPU), static_cast<unsigned long>(KVM_SET_FPU),
    static_cast<unsigned long>(KVM_GET_XCRS), static_cast<unsigned long>(KVM_SET_XCRS),
    static_cast<unsigned long>(KVM_GET_LAPIC), static_cast<unsigned long>(KVM_SET_LAPIC),
    static_cast<unsigned long>(KVM_GET_VCPU_EVENTS), static_cast<unsigned long>(KVM_SET_VCPU_EVENTS),
    static_cast<unsigned long>(KVM_GET_MP_STATE), static_cast<unsigned long>(KVM_SET_MP_STATE),
    uapi::kSetCpuid2, uapi::kGetMsrs, uapi::kSetMsrs, uapi::kGetXsave, uapi::kSetXsave, uapi::kGetXsave2,
};

}  // namespace kite
