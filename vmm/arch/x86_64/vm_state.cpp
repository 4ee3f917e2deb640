#include "vmm/arch/x86_64/vm_state.h"

#include "base/size.h"
#include "vmm/kvm/kvm_uapi.h"

#include <sys/ioctl.h>

#include <cerrno>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <string>

namespace kite {

namespace {

// struct kvm_xsave ends in __DECLARE_FLEX_ARRAY, so in C++ its sizeof is 4100, not C's 4096, and the
// header's KVM_GET_XSAVE / KVM_SET_XSAVE numbers are wrong (KVM answers EINVAL): vmm/kvm/kvm_uapi.h has C's.
using uapi::kGetXsave;
using uapi::kGetXsave2;
using uapi::kSetXsave;
using uapi::kXsaveLegacySize;

int xioctl(int fd, unsigned long req, void* arg) {
    int r;
    do {
        r = ::ioctl(fd, req, arg);
    } while (r < 0 && errno == EINTR);
    return r;
}

Error context(const Error& e, const std::string& what) { return Error{what + ": " + e.message, e.code}; }

std::vector<kvm_msr_entry> msr_entries(const std::vector<uint32_t>& indices) {
    std::vector<kvm_msr_entry> entries(indices.size());
    for (size_t i = 0; i < indices.size(); ++i) entries[i].index = indices[i];
    return entries;
}

}  // namespace

Result<std::vector<uint32_t>> readable_msrs(const Kvm& kvm, const VcpuFd& vcpu) {
    auto list = kvm.msr_index_list();
    if (!list) return std::unexpected(list.error());
    // KVM_GET_MSRS stops at the first MSR it cannot read and returns how many it did: keep those, drop
    // the refused one, and go on with the rest.
    std::vector<uint32_t> readable;
    size_t next = 0;
    while (next < list->size()) {
        std::vector<uint32_t> rest(list->begin() + static_cast<ptrdiff_t>(next), list->end());
        auto entries = msr_entries(rest);
        auto n = vcpu.get_msrs(entries);
        if (!n) return std::unexpected(n.error());
        readable.insert(readable.end(), rest.begin(), rest.begin() + static_cast<ptrdiff_t>(*n));
        next += *n + 1;  // skip the refused one
    }
    return readable;
}

Result<size_t> xsave_size(const VmFd& vm) {
    auto size = vm.check_extension(KVM_CAP_XSAVE2);
    if (!size) return std::unexpected(size.error());
    return std::max<size_t>(static_cast<size_t>(*size), kXsaveLegacySize);  // 0: no XSAVE2, the 4 KiB area
}

Result<VcpuState> capture_vcpu(const VcpuFd& vcpu, uint32_t index, const std::vector<uint32_t>& msrs,
                               size_t xsave_size) {
    VcpuState s;
    s.index = index;
    const std::string who = "vCPU " + std::to_string(index);
    auto check = [&](Result<void> r) -> Result<void> {
        if (!r) return std::unexpected(context(r.error(), who));
        return {};
    };
    if (auto r = check(vcpu.get_mp_state(s.mp_state)); !r) return std::unexpected(r.error());
    if (auto r = check(vcpu.get_regs(s.regs)); !r) return std::unexpected(r.error());
    if (auto r = check(vcpu.get_sregs(s.sregs)); !r) return std::unexpected(r.error());
    if (auto r = check(vcpu.get_fpu(s.fpu)); !r) return std::unexpected(r.error());
    s.xsave.assign(xsave_size, 0);
    if (xioctl(vcpu.fd(), xsave_size > kXsaveLegacySize ? kGetXsave2 : kGetXsave, s.xsave.data()) < 0)
        return std::unexpected(errno_error(who + ": KVM_GET_XSAVE"));
    if (auto r = check(vcpu.get_xcrs(s.xcrs)); !r) return std::unexpected(r.error());
    if (auto r = check(vcpu.get_lapic(s.lapic)); !r) return std::unexpected(r.error());
    s.msrs = msr_entries(msrs);
    auto n = vcpu.get_msrs(s.msrs);
    if (!n) return std::unexpected(context(n.error(), who));
    if (*n != s.msrs.size())
        return fail(who + ": KVM_GET_MSRS read " + std::to_string(*n) + " of " + std::to_string(s.msrs.size()) +
                    " MSRs, stopping at " + hex_text(s.msrs[*n].index));
    if (auto r = check(vcpu.get_vcpu_events(s.events)); !r) return std::unexpected(r.error());
    return s;
}

Result<void> restore_vcpu(const VcpuFd& vcpu, const VcpuState& s, size_t xsave_size) {
    const std::string who = "vCPU " + std::to_string(s.index);
    auto check = [&](Result<void> r) -> Result<void> {
        if (!r) return std::unexpected(context(r.error(), who));
        return {};
    };
    // KVM_SET_XSAVE reads as many bytes as this KVM's XSAVE area has.
    if (s.xsave.size() != xsave_size)
        return fail(who + ": XSAVE area of " + std::to_string(s.xsave.size()) + " bytes, this KVM uses " +
                    std::to_string(xsave_size) + " (the snapshot comes from a different CPU or KVM)");
    std::vector<uint8_t> xsave = s.xsave;  // the ioctl takes a non-const pointer
    if (auto r = check(vcpu.set_mp_state(s.mp_state)); !r) return r;
    if (auto r = check(vcpu.set_regs(s.regs)); !r) return r;
    if (auto r = check(vcpu.set_sregs(s.sregs)); !r) return r;
    if (auto r = check(vcpu.set_fpu(s.fpu)); !r) return r;
    if (xioctl(vcpu.fd(), kSetXsave, xsave.data()) < 0) return std::unexpected(errno_error(who + ": KVM_SET_XSAVE"));
    if (auto r = check(vcpu.set_xcrs(s.xcrs)); !r) return r;
    if (auto r = check(vcpu.set_lapic(s.lapic)); !r) return r;
    auto n = vcpu.set_msrs(s.msrs);
    if (!n) return std::unexpected(context(n.error(), who));
    if (*n != s.msrs.size())
        return fail(who + ": KVM_SET_MSRS refused MSR " + hex_text(s.msrs[*n].index) + " (" + std::to_string(*n) +
                    " of " + std::to_string(s.msrs.size()) + " written): the snapshot comes from a different CPU "
                    "or KVM");
    return check(vcpu.set_vcpu_events(s.events));
}

Result<VmLevelState> capture_vm_level(const VmFd& vm) {
    VmLevelState s;
    if (auto r = vm.get_clock(s.clock); !r) return std::unexpected(r.error());
    return s;
}

Result<void> restore_vm_level(const VmFd& vm, const VmLevelState& s) {
    // The guest's clock continues from the snapshot's value: no REALTIME/TSC flags (KVM would jump it by
    // the time the snapshot spent on disk).
    kvm_clock_data clock{};
    clock.clock = s.clock.clock;
    return vm.set_clock(clock);
}

}  // namespace kite
