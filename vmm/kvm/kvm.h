// One RAII type per KVM fd level (docs/ARCHITECTURE.md example 3): Kvm (/dev/kvm), VmFd, VcpuFd.
// Every call returns Result with the ioctl named in the error, so a missing capability or permission is
// reported as such rather than as a bare errno. A new ioctl also goes in kvm_ioctls.h (the seccomp allowlist).
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/error.h"
#include "base/event_fd.h"
#include "base/fd.h"
#include "vmm/kvm/vcpu_exit.h"

namespace kite {

// Newer than the 6.1 UAPI headers this project builds against.
inline constexpr int kKvmCapVmTypes = 235;
inline constexpr int kKvmCapExitHypercall = 201;

class VcpuFd;

class VmFd {
public:
    int fd() const { return fd_.get(); }
    Result<int> check_extension(int cap) const;
    Result<void> set_user_memory_region(uint32_t slot, uint64_t gpa, uint64_t size, void* host,
                                        uint32_t flags = 0) const;
    // KVM keeps the local APICs; the I/O APIC is the VMM's (devices/legacy/ioapic.h), its `pins` GSIs
    // routed as MSIs. No PIC, no PIT. Before any vCPU exists.
    Result<void> create_split_irqchip(uint32_t pins) const;
    // Replaces the whole GSI routing table (KVM_SET_GSI_ROUTING).
    Result<void> set_gsi_routing(std::span<const kvm_irq_routing_entry> entries) const;
    Result<void> set_tss_address(uint64_t addr) const;
    Result<void> set_identity_map_address(uint64_t addr) const;
    Result<void> register_irqfd(int eventfd, uint32_t gsi) const;
    Result<void> unregister_irqfd(int eventfd, uint32_t gsi) const;
    Result<void> register_ioeventfd(int eventfd, uint64_t addr, uint32_t len, std::optional<uint64_t> datamatch,
                                    bool pio) const;
    Result<void> unregister_ioeventfd(int eventfd, uint64_t addr, uint32_t len,
                                      std::optional<uint64_t> datamatch, bool pio) const;
    Result<void> enable_cap(uint32_t cap, uint64_t arg0 = 0, uint64_t arg1 = 0) const;
    Result<void> get_clock(kvm_clock_data& clock) const;
    Result<void> set_clock(const kvm_clock_data& clock) const;
    Result<void> get_dirty_log(uint32_t slot, std::span<uint64_t> bitmap) const;
    Result<void> set_msr_filter(const kvm_msr_filter& filter) const;
    Result<VcpuFd> create_vcpu(unsigned id) const;

private:
    friend class Kvm;
    VmFd(UniqueFd fd, int run_size) : fd_(std::move(fd)), run_size_(run_size) {}
    UniqueFd fd_;
    int run_size_ = 0;
};

class VcpuFd {
public:
    VcpuFd(VcpuFd&&) noexcept;
    VcpuFd& operator=(VcpuFd&&) noexcept;
    ~VcpuFd();

    int fd() const { return fd_.get(); }
    kvm_run* run_struct() const { return run_; }
    // Runs until the next exit; EINTR (a kick from another thread) comes back as VcpuExit::Interrupted.
    Result<VcpuExit> run() const;

    Result<void> get_regs(kvm_regs&) const;
    Result<void> set_regs(const kvm_regs&) const;
    Result<void> get_sregs(kvm_sregs&) const;
    Result<void> set_sregs(const kvm_sregs&) const;
    Result<void> get_fpu(kvm_fpu&) const;
    Result<void> set_fpu(const kvm_fpu&) const;
    // XSAVE: no wrapper here; the area's size is KVM's (KVM_CAP_XSAVE2), see uapi::kGetXsave2 and vm_state.cpp.
    Result<void> get_xcrs(kvm_xcrs&) const;
    Result<void> set_xcrs(const kvm_xcrs&) const;
    Result<void> get_lapic(kvm_lapic_state&) const;
    Result<void> set_lapic(const kvm_lapic_state&) const;
    Result<void> get_vcpu_events(kvm_vcpu_events&) const;
    Result<void> set_vcpu_events(const kvm_vcpu_events&) const;
    Result<void> get_mp_state(kvm_mp_state&) const;
    Result<void> set_mp_state(const kvm_mp_state&) const;
    Result<void> set_cpuid(const std::vector<kvm_cpuid_entry2>& entries) const;
    // Reads/writes the MSRs in `entries` (index filled in); returns how many were processed.
    Result<size_t> get_msrs(std::vector<kvm_msr_entry>& entries) const;
    Result<size_t> set_msrs(const std::vector<kvm_msr_entry>& entries) const;

private:
    friend class VmFd;
    VcpuFd(UniqueFd fd, kvm_run* run, int run_size) : fd_(std::move(fd)), run_(run), run_size_(run_size) {}
    UniqueFd fd_;
    kvm_run* run_ = nullptr;
    int run_size_ = 0;
};

class Kvm {
public:
    // Opens /dev/kvm with a message that says what to do when it is missing or not permitted.
    static Result<Kvm> open(const char* path = "/dev/kvm");
    int fd() const { return fd_.get(); }
    Result<int> check_extension(int cap) const;
    // Fails with the capability's name when KVM lacks something Kite cannot run without.
    Result<void> require_capabilities() const;
    Result<VmFd> create_vm(unsigned long type = 0) const;
    Result<std::vector<kvm_cpuid_entry2>> supported_cpuid() const;
    Result<std::vector<uint32_t>> msr_index_list() const;
    // True when this KVM is PVM (ring 0 emulated, slow): /sys/module/kvm_pvm exists.
    static bool is_pvm();

private:
    explicit Kvm(UniqueFd fd) : fd_(std::move(fd)) {}
    UniqueFd fd_;
};

}  // namespace kite
