#include "vmm/kvm/kvm.h"

#include "vmm/kvm/kvm_uapi.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

namespace kite {

namespace {

// ioctl with EINTR retry for calls that are not KVM_RUN.
template <class Arg>
int xioctl(int fd, unsigned long req, Arg arg) {
    int r;
    do {
        r = ::ioctl(fd, req, arg);
    } while (r < 0 && errno == EINTR);
    return r;
}

template <class Arg>
Result<void> call(int fd, unsigned long req, Arg arg, const char* name) {
    if (xioctl(fd, req, arg) < 0) return std::unexpected(errno_error(name));
    return {};
}

}  // namespace

// ---- Kvm ----

Result<Kvm> Kvm::open(const char* path) {
    int fd = ::open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        std::string msg = std::string("cannot open ") + path + ": " + std::strerror(err);
        if (err == ENOENT)
            msg += " (KVM is not available: load kvm_intel or kvm_amd, or run inside the nested sandbox: "
                   "scripts/sandbox.sh)";
        else if (err == EACCES || err == EPERM)
            msg += " (no permission: add yourself to the 'kvm' group or run as root)";
        return std::unexpected(Error{msg, err});
    }
    Kvm kvm{UniqueFd(fd)};
    int version = ::ioctl(fd, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION)
        return fail("KVM API version " + std::to_string(version) + " is not the supported version 12");
    return kvm;
}

Result<int> Kvm::check_extension(int cap) const {
    int r = xioctl(fd_.get(), KVM_CHECK_EXTENSION, cap);
    if (r < 0) return std::unexpected(errno_error("KVM_CHECK_EXTENSION"));
    return r;
}

Result<void> Kvm::require_capabilities() const {
    struct Need {
        int cap;
        const char* name;
    };
    static constexpr Need needs[] = {
        {KVM_CAP_SPLIT_IRQCHIP, "KVM_CAP_SPLIT_IRQCHIP"}, {KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING"},
        {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},           {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
        {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"}, {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
        {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"}, {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
    };
    for (const auto& n : needs) {
        auto r = check_extension(n.cap);
        if (!r) return std::unexpected(r.error());
        if (*r <= 0) return unsupported(std::string("KVM lacks a required capability: ") + n.name);
    }
    return {};
}

Result<VmFd> Kvm::create_vm(unsigned long type) const {
    int run_size = xioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size < 0) return std::unexpected(errno_error("KVM_GET_VCPU_MMAP_SIZE"));
    int fd = xioctl(fd_.get(), KVM_CREATE_VM, type);
    if (fd < 0) return std::unexpected(errno_error("KVM_CREATE_VM"));
    return VmFd(UniqueFd(fd), run_size);
}

Result<std::vector<kvm_cpuid_entry2>> Kvm::supported_cpuid() const {
    constexpr uint32_t kMax = 256;
    std::vector<uint8_t> buf(sizeof(uapi::Cpuid2Header) + kMax * sizeof(kvm_cpuid_entry2));
    auto* header = reinterpret_cast<uapi::Cpuid2Header*>(buf.data());
    header->nent = kMax;
    if (xioctl(fd_.get(), uapi::kGetSupportedCpuid, buf.data()) < 0)
        return std::unexpected(errno_error("KVM_GET_SUPPORTED_CPUID"));
    std::vector<kvm_cpuid_entry2> out(header->nent);
    std::memcpy(out.data(), buf.data() + sizeof(uapi::Cpuid2Header), out.size() * sizeof(kvm_cpuid_entry2));
    return out;
}

Result<std::vector<uint32_t>> Kvm::msr_index_list() const {
    uapi::MsrListHeader probe{0};
    if (xioctl(fd_.get(), uapi::kGetMsrIndexList, &probe) < 0 && errno != E2BIG)
        return std::unexpected(errno_error("KVM_GET_MSR_INDEX_LIST"));
    std::vector<uint32_t> buf(1 + probe.nmsrs);
    buf[0] = probe.nmsrs;
    if (xioctl(fd_.get(), uapi::kGetMsrIndexList, buf.data()) < 0)
        return std::unexpected(errno_error("KVM_GET_MSR_INDEX_LIST"));
    return std::vector<uint32_t>(buf.begin() + 1, buf.begin() + 1 + buf[0]);
}

bool Kvm::is_pvm() {
    struct stat st;
    return ::stat("/sys/module/kvm_pvm", &st) == 0;
}

// ---- VmFd ----

Result<int> VmFd::check_extension(int cap) const {
    int r = xioctl(fd_.get(), KVM_CHECK_EXTENSION, cap);
    if (r < 0) return std::unexpected(errno_error("KVM_CHECK_EXTENSION (vm)"));
    return r;
}

Result<void> VmFd::set_user_memory_region(uint32_t slot, uint64_t gpa, uint64_t size, void* host,
                                          uint32_t flags) const {
    kvm_userspace_memory_region region{slot, flags, gpa, size, reinterpret_cast<uint64_t>(host)};
    return call(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION");
}

Result<void> VmFd::create_split_irqchip(uint32_t pins) const {
    if (auto r = enable_cap(KVM_CAP_SPLIT_IRQCHIP, pins); !r)
        return std::unexpected(with_context("KVM_ENABLE_CAP(KVM_CAP_SPLIT_IRQCHIP)", r.error()));
    return {};
}

Result<void> VmFd::set_gsi_routing(std::span<const kvm_irq_routing_entry> entries) const {
    std::vector<uint8_t> buf(sizeof(uapi::IrqRoutingHeader) + entries.size() * sizeof(kvm_irq_routing_entry));
    auto* header = reinterpret_cast<uapi::IrqRoutingHeader*>(buf.data());
    header->nr = static_cast<uint32_t>(entries.size());
    if (!entries.empty())  // an empty table (every pin masked) has no entries to copy
        std::memcpy(buf.data() + sizeof(uapi::IrqRoutingHeader), entries.data(),
                    entries.size() * sizeof(kvm_irq_routing_entry));
    return call(fd_.get(), uapi::kSetGsiRouting, buf.data(), "KVM_SET_GSI_ROUTING");
}

Result<void> VmFd::set_tss_address(uint64_t addr) const {
    return call(fd_.get(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(addr), "KVM_SET_TSS_ADDR");
}

Result<void> VmFd::set_identity_map_address(uint64_t addr) const {
    return call(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &addr, "KVM_SET_IDENTITY_MAP_ADDR");
}

Result<void> VmFd::register_irqfd(int eventfd, uint32_t gsi) const {
    kvm_irqfd irqfd{};
    irqfd.fd = static_cast<uint32_t>(eventfd);
    irqfd.gsi = gsi;
    return call(fd_.get(), KVM_IRQFD, &irqfd, "KVM_IRQFD");
}

Result<void> VmFd::unregister_irqfd(int eventfd, uint32_t gsi) const {
    kvm_irqfd irqfd{};
    irqfd.fd = static_cast<uint32_t>(eventfd);
    irqfd.gsi = gsi;
    irqfd.flags = KVM_IRQFD_FLAG_DEASSIGN;
    return call(fd_.get(), KVM_IRQFD, &irqfd, "KVM_IRQFD (deassign)");
}

static kvm_ioeventfd make_ioeventfd(int eventfd, uint64_t addr, uint32_t len, std::optional<uint64_t> datamatch,
                                    bool pio) {
    kvm_ioeventfd io{};
    io.addr = addr;
    io.len = len;
    io.fd = eventfd;
    if (datamatch) {
        io.datamatch = *datamatch;
        io.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
    }
    if (pio) io.flags |= KVM_IOEVENTFD_FLAG_PIO;
    return io;
}

Result<void> VmFd::register_ioeventfd(int eventfd, uint64_t addr, uint32_t len, std::optional<uint64_t> datamatch,
                                      bool pio) const {
    auto io = make_ioeventfd(eventfd, addr, len, datamatch, pio);
    return call(fd_.get(), KVM_IOEVENTFD, &io, "KVM_IOEVENTFD");
}

Result<void> VmFd::unregister_ioeventfd(int eventfd, uint64_t addr, uint32_t len,
                                        std::optional<uint64_t> datamatch, bool pio) const {
    auto io = make_ioeventfd(eventfd, addr, len, datamatch, pio);
    io.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
    return call(fd_.get(), KVM_IOEVENTFD, &io, "KVM_IOEVENTFD (deassign)");
}

Result<void> VmFd::enable_cap(uint32_t cap, uint64_t arg0, uint64_t arg1) const {
    kvm_enable_cap ec{};
    ec.cap = cap;
    ec.args[0] = arg0;
    ec.args[1] = arg1;
    return call(fd_.get(), KVM_ENABLE_CAP, &ec, "KVM_ENABLE_CAP");
}

Result<void> VmFd::get_clock(kvm_clock_data& c) const { return call(fd_.get(), KVM_GET_CLOCK, &c, "KVM_GET_CLOCK"); }
Result<void> VmFd::set_clock(const kvm_clock_data& c) const { return call(fd_.get(), KVM_SET_CLOCK, &c, "KVM_SET_CLOCK"); }

Result<void> VmFd::get_dirty_log(uint32_t slot, std::span<uint64_t> bitmap) const {
    kvm_dirty_log log{};
    log.slot = slot;
    log.dirty_bitmap = bitmap.data();
    return call(fd_.get(), KVM_GET_DIRTY_LOG, &log, "KVM_GET_DIRTY_LOG");
}

Result<void> VmFd::set_msr_filter(const kvm_msr_filter& filter) const {
    return call(fd_.get(), KVM_X86_SET_MSR_FILTER, &filter, "KVM_X86_SET_MSR_FILTER");
}

Result<VcpuFd> VmFd::create_vcpu(unsigned id) const {
    int fd = xioctl(fd_.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(id));
    if (fd < 0) return std::unexpected(errno_error("KVM_CREATE_VCPU"));
    UniqueFd owned(fd);
    void* run = ::mmap(nullptr, static_cast<size_t>(run_size_), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (run == MAP_FAILED) return std::unexpected(errno_error("mmap kvm_run"));
    return VcpuFd(std::move(owned), static_cast<kvm_run*>(run), run_size_);
}

// ---- VcpuFd ----

VcpuFd::VcpuFd(VcpuFd&& o) noexcept
    : fd_(std::move(o.fd_)), run_(std::exchange(o.run_, nullptr)), run_size_(o.run_size_) {}

VcpuFd& VcpuFd::operator=(VcpuFd&& o) noexcept {
    if (this != &o) {
        if (run_) ::munmap(run_, static_cast<size_t>(run_size_));
        fd_ = std::move(o.fd_);
        run_ = std::exchange(o.run_, nullptr);
        run_size_ = o.run_size_;
    }
    return *this;
}

VcpuFd::~VcpuFd() {
    if (run_) ::munmap(run_, static_cast<size_t>(run_size_));
}

Result<VcpuExit> VcpuFd::run() const {
    if (::ioctl(fd_.get(), KVM_RUN, 0) < 0) {
        if (errno == EINTR || errno == EAGAIN) {
            run_->immediate_exit = 0;
            return Interrupted{};
        }
        return std::unexpected(errno_error("KVM_RUN"));
    }
    auto* base = reinterpret_cast<uint8_t*>(run_);
    switch (run_->exit_reason) {
    case KVM_EXIT_IO: {
        uint8_t* data = base + run_->io.data_offset;
        size_t len = static_cast<size_t>(run_->io.size) * run_->io.count;
        if (run_->io.direction == KVM_EXIT_IO_IN) return IoIn{run_->io.port, {data, len}, run_->io.count};
        return IoOut{run_->io.port, {data, len}, run_->io.count};
    }
    case KVM_EXIT_MMIO:
        if (run_->mmio.is_write) return MmioWrite{run_->mmio.phys_addr, {run_->mmio.data, run_->mmio.len}};
        return MmioRead{run_->mmio.phys_addr, {run_->mmio.data, run_->mmio.len}};
    case KVM_EXIT_HLT: return Hlt{};
    case KVM_EXIT_SHUTDOWN: return Shutdown{};
    case KVM_EXIT_SYSTEM_EVENT: return SystemEvent{run_->system_event.type};
    case KVM_EXIT_IOAPIC_EOI: return IoapicEoi{run_->eoi.vector};
    case KVM_EXIT_INTR: return Interrupted{};
    case KVM_EXIT_X86_WRMSR: return MsrWrite{run_->msr.index, run_->msr.data, &run_->msr.error};
    case KVM_EXIT_X86_RDMSR: return MsrRead{run_->msr.index, &run_->msr.data, &run_->msr.error};
    case KVM_EXIT_HYPERCALL: {
        Hypercall h{run_->hypercall.nr, {}, &run_->hypercall.ret};
        std::memcpy(h.args, run_->hypercall.args, sizeof h.args);
        return h;
    }
    case KVM_EXIT_FAIL_ENTRY: return FailEntry{run_->fail_entry.hardware_entry_failure_reason};
    case KVM_EXIT_INTERNAL_ERROR: return InternalError{run_->internal.suberror};
    default: return UnknownExit{run_->exit_reason};
    }
}

#define KITE_VCPU_GETSET(type, getname, setname, getreq, setreq)                                  \
    Result<void> VcpuFd::getname(type& v) const { return call(fd_.get(), getreq, &v, #getreq); } \
    Result<void> VcpuFd::setname(const type& v) const { return call(fd_.get(), setreq, &v, #setreq); }

KITE_VCPU_GETSET(kvm_regs, get_regs, set_regs, KVM_GET_REGS, KVM_SET_REGS)
KITE_VCPU_GETSET(kvm_sregs, get_sregs, set_sregs, KVM_GET_SREGS, KVM_SET_SREGS)
KITE_VCPU_GETSET(kvm_fpu, get_fpu, set_fpu, KVM_GET_FPU, KVM_SET_FPU)
KITE_VCPU_GETSET(kvm_xcrs, get_xcrs, set_xcrs, KVM_GET_XCRS, KVM_SET_XCRS)
KITE_VCPU_GETSET(kvm_lapic_state, get_lapic, set_lapic, KVM_GET_LAPIC, KVM_SET_LAPIC)
KITE_VCPU_GETSET(kvm_vcpu_events, get_vcpu_events, set_vcpu_events, KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS)
KITE_VCPU_GETSET(kvm_mp_state, get_mp_state, set_mp_state, KVM_GET_MP_STATE, KVM_SET_MP_STATE)
#undef KITE_VCPU_GETSET

Result<void> VcpuFd::set_cpuid(const std::vector<kvm_cpuid_entry2>& entries) const {
    std::vector<uint8_t> buf(sizeof(uapi::Cpuid2Header) + entries.size() * sizeof(kvm_cpuid_entry2));
    reinterpret_cast<uapi::Cpuid2Header*>(buf.data())->nent = static_cast<uint32_t>(entries.size());
    std::memcpy(buf.data() + sizeof(uapi::Cpuid2Header), entries.data(), entries.size() * sizeof(kvm_cpuid_entry2));
    return call(fd_.get(), uapi::kSetCpuid2, buf.data(), "KVM_SET_CPUID2");
}

namespace {
// struct kvm_msrs in its C layout: header, then the entries.
std::vector<uint8_t> msrs_buffer(const std::vector<kvm_msr_entry>& entries) {
    std::vector<uint8_t> buf(sizeof(uapi::MsrsHeader) + entries.size() * sizeof(kvm_msr_entry));
    reinterpret_cast<uapi::MsrsHeader*>(buf.data())->nmsrs = static_cast<uint32_t>(entries.size());
    std::memcpy(buf.data() + sizeof(uapi::MsrsHeader), entries.data(), entries.size() * sizeof(kvm_msr_entry));
    return buf;
}
}  // namespace

Result<size_t> VcpuFd::get_msrs(std::vector<kvm_msr_entry>& entries) const {
    auto buf = msrs_buffer(entries);
    int n = xioctl(fd_.get(), uapi::kGetMsrs, buf.data());
    if (n < 0) return std::unexpected(errno_error("KVM_GET_MSRS"));
    std::memcpy(entries.data(), buf.data() + sizeof(uapi::MsrsHeader), entries.size() * sizeof(kvm_msr_entry));
    return static_cast<size_t>(n);
}

Result<size_t> VcpuFd::set_msrs(const std::vector<kvm_msr_entry>& entries) const {
    auto buf = msrs_buffer(entries);
    int n = xioctl(fd_.get(), uapi::kSetMsrs, buf.data());
    if (n < 0) return std::unexpected(errno_error("KVM_SET_MSRS"));
    return static_cast<size_t>(n);
}

}  // namespace kite
