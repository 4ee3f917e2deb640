// Corrections to the 6.1 KVM UAPI headers for C++.
//
// linux-libc-dev 6.1 declares flexible arrays with __DECLARE_FLEX_ARRAY, which in C++ wraps the array
// in a struct with an empty-struct member. C++ gives that member a size, so sizeof(struct kvm_cpuid2),
// kvm_msrs, kvm_msr_list, kvm_irq_routing ... differ from C, the entries sit at the wrong offset, and
// every ioctl number built from those sizes is wrong (KVM answers EINVAL). Kite never uses those structs'
// flexible members; it uses the C-layout headers below and the ioctl numbers computed from them.
#pragma once

#include <linux/kvm.h>

#include <cstddef>
#include <cstdint>

namespace kite::uapi {

struct Cpuid2Header {  // struct kvm_cpuid2 without entries[]; kvm_cpuid_entry2 entries follow at +8
    uint32_t nent;
    uint32_t padding;
};
struct MsrsHeader {  // struct kvm_msrs; kvm_msr_entry entries follow at +8
    uint32_t nmsrs;
    uint32_t pad;
};
struct MsrListHeader {  // struct kvm_msr_list; u32 indices follow at +4
    uint32_t nmsrs;
};
struct IrqRoutingHeader {  // struct kvm_irq_routing; kvm_irq_routing_entry entries follow at +8
    uint32_t nr;
    uint32_t flags;
};
static_assert(sizeof(Cpuid2Header) == 8 && sizeof(MsrsHeader) == 8 && sizeof(MsrListHeader) == 4 &&
              sizeof(IrqRoutingHeader) == 8);

inline constexpr unsigned long kGetMsrIndexList = _IOWR(KVMIO, 0x02, MsrListHeader);
inline constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, Cpuid2Header);
inline constexpr unsigned long kSetGsiRouting = _IOW(KVMIO, 0x6a, IrqRoutingHeader);
inline constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, MsrsHeader);
inline constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, MsrsHeader);
inline constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, Cpuid2Header);
inline constexpr unsigned long kGetCpuid2 = _IOWR(KVMIO, 0x91, Cpuid2Header);
// struct kvm_xsave is region[1024] plus a flexible array: 4096 bytes in C, 4100 in C++.
inline constexpr size_t kXsaveLegacySize = 4096;
inline constexpr unsigned long kGetXsave = _IOC(_IOC_READ, KVMIO, 0xa4, kXsaveLegacySize);
inline constexpr unsigned long kSetXsave = _IOC(_IOC_WRITE, KVMIO, 0xa5, kXsaveLegacySize);
inline constexpr unsigned long kGetXsave2 = _IOC(_IOC_READ, KVMIO, 0xcf, kXsaveLegacySize);

// The values C computes (checked against gcc on linux-libc-dev 6.1).
static_assert(kGetSupportedCpuid == 0xc008ae05 && kSetCpuid2 == 0x4008ae90 && kGetMsrs == 0xc008ae88 &&
              kSetMsrs == 0x4008ae89 && kGetMsrIndexList == 0xc004ae02 && kSetGsiRouting == 0x4008ae6a &&
              kGetXsave == 0x9000aea4 && kSetXsave == 0x5000aea5 && kGetXsave2 == 0x9000aecf);

}  // namespace kite::uapi
