#include "vmm/kvm/vcpu.h"

#include <pthread.h>
#include <signal.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstring>

#include "vmm/kvm/run_signals.h"

namespace kite {

namespace {

// Why the guest's run ended, with where the vCPU was: enough to find the faulting code in the guest.
std::string crash_report(unsigned index, const VcpuFd& fd, const std::string& what) {
    std::string why = "vCPU " + std::to_string(index) + ": " + what;
    kvm_regs regs{};
    kvm_sregs sregs{};
    if (!fd.get_regs(regs) || !fd.get_sregs(sregs)) return why;
    return why + fmt::format(" at rip {:#x} (cs {:#x}), rsp {:#x}, cr0 {:#x}, cr2 {:#x}, cr3 {:#x}, cr4 {:#x}, efer {:#x}",
                             regs.rip, sregs.cs.selector, regs.rsp, sregs.cr0, sregs.cr2, sregs.cr3, sregs.cr4, sregs.efer);
}

const char* mp_state_name(uint32_t state) {
    switch (state) {
    case KVM_MP_STATE_RUNNABLE: return "runnable";
    case KVM_MP_STATE_UNINITIALIZED: return "waiting for INIT";
    case KVM_MP_STATE_INIT_RECEIVED: return "waiting for SIPI";
    case KVM_MP_STATE_HALTED: return "halted";
    default: return "other run state";
    }
}

// The vectors set in one of the local APIC's 256-bit registers (ISR at 0x100, IRR at 0x200): eight
// 32-bit words, 16 bytes apart.
std::string apic_vectors(const kvm_lapic_state& lapic, size_t base) {
    std::string out;
    for (unsigned word = 0; word < 8; ++word) {
        uint32_t bits = 0;
        std::memcpy(&bits, lapic.regs + base + 0x10 * word, 4);
        for (unsigned bit = 0; bit < 32; ++bit)
            if (bits & (1u << bit)) out += fmt::format("{}{:#x}", out.empty() ? "" : " ", word * 32 + bit);
    }
    return out.empty() ? "none" : out;
}

template <class... Ts>
struct Overloaded : Ts... {
    using Ts::operator()...;
};
// C++20 deduces this from the aggregate; clang 16 (the fuzz build) still needs the guide.
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

}  // namespace

VcpuSet::VcpuSet(Bus& pio, Bus& mmio, VcpuHooks hooks) : pio_(pio), mmio_(mmio), hooks_(std::move(hooks)) {
    install_run_interrupt_handler(vcpu_kick_signal());
}

VcpuSet::~VcpuSet() { stop(); }

std::string VcpuSet::describe(size_t i) const {
    const VcpuFd& fd = vcpus_[i]->fd;
    std::string out = "vCPU " + std::to_string(i) + ":";
    kvm_regs regs{};
    kvm_sregs sregs{};
    if (!fd.get_regs(regs) || !fd.get_sregs(sregs)) return out + " registers unreadable";
    out += fmt::format(" rip {:#x} (cs {:#x}), rsp {:#x}, rflags {:#x}, cr3 {:#x}", regs.rip, sregs.cs.selector,
                       regs.rsp, regs.rflags, sregs.cr3);
    if (kvm_mp_state mp{}; fd.get_mp_state(mp)) out += std::string(", ") + mp_state_name(mp.mp_state);
    if (kvm_lapic_state lapic{}; fd.get_lapic(lapic)) {
        uint32_t tpr = 0;
        std::memcpy(&tpr, lapic.regs + 0x80, 4);
        out += fmt::format("; local APIC: TPR {:#x}, in service {}, pending {}", tpr & 0xff, apic_vectors(lapic, 0x100),
                           apic_vectors(lapic, 0x200));
    }
    return out;
}

void VcpuSet::add(VcpuFd vcpu) { vcpus_.push_back(std::make_unique<Vcpu>(std::move(vcpu))); }

void VcpuSet::start() {
    for (unsigned i = 0; i < vcpus_.size(); ++i) {
        vcpus_[i]->thread = std::thread([this, i] {
            // Named from inside: glibc then uses prctl instead of writing /proc/self/task/TID/comm, which
            // took ~6 ms per thread in the nested sandbox and delayed the guest's first instruction.
            char name[16];
            std::snprintf(name, sizeof name, "kite-vcpu%u", i);
            pthread_setname_np(pthread_self(), name);
            run_loop(i);
        });
    }
}

void VcpuSet::kick_all() {
    for (auto& v : vcpus_) {
        // immediate_exit covers a vCPU that is between the attention check and the KVM_RUN ioctl.
        __atomic_store_n(&v->fd.run_struct()->immediate_exit, 1, __ATOMIC_SEQ_CST);
        if (v->thread.joinable()) pthread_kill(v->thread.native_handle(), vcpu_kick_signal());
    }
}

void VcpuSet::pause() {
    std::unique_lock lock(mutex_);
    if (pause_requested_ || stop_requested_) return;
    pause_requested_ = true;
    attention_.store(true);
    kick_all();
    // A vCPU whose thread ended (KVM_RUN failed) never parks: count it as parked, or pause() would hang.
    cv_.wait(lock, [&] { return parked_ + exited_ == vcpus_.size() || stop_requested_; });
}

void VcpuSet::resume() {
    std::lock_guard lock(mutex_);
    pause_requested_ = false;
    attention_.store(stop_requested_);
    cv_.notify_all();
}

void VcpuSet::stop() {
    {
        std::lock_guard lock(mutex_);
        stop_requested_ = true;
        attention_.store(true);
        kick_all();
        cv_.notify_all();
    }
    for (auto& v : vcpus_)
        if (v->thread.joinable() && v->thread.get_id() != std::this_thread::get_id()) v->thread.join();
}

void VcpuSet::run_loop(unsigned index) {
    struct ExitCount {
        VcpuSet& set;
        ~ExitCount() {
            std::lock_guard lock(set.mutex_);
            ++set.exited_;
            set.cv_.notify_all();
        }
    } exit_count{*this};

    // Host signals (SIGINT, SIGTERM, SIGCHLD) belong to the VMM thread; only the kick reaches vCPUs.
    sigset_t set;
    sigfillset(&set);
    sigdelset(&set, vcpu_kick_signal());
    pthread_sigmask(SIG_SETMASK, &set, nullptr);

    const VcpuFd& fd = vcpus_[index]->fd;
    unsigned faults_in_a_row = 0;  // EFAULTs from KVM_RUN since the last exit that was not one
    for (;;) {
        if (attention_.load()) {
            std::unique_lock lock(mutex_);
            if (stop_requested_) return;
            if (pause_requested_) {
                // KVM finishes an I/O exit (an IN's data into RAX, a string op's next step) only on the
                // next KVM_RUN; with immediate_exit set that call completes it and returns at once, so
                // the state a snapshot reads from a parked vCPU is never mid-instruction.
                lock.unlock();
                complete_pending_io(index);
                lock.lock();
                if (stop_requested_) return;
                ++parked_;
                cv_.notify_all();
                cv_.wait(lock, [&] { return !pause_requested_ || stop_requested_; });
                --parked_;
                if (stop_requested_) return;
            }
            fd.run_struct()->immediate_exit = 0;
        }
        auto exit = fd.run();
        if (!exit) {
            if (retry_after_fault(exit.error(), faults_in_a_row)) continue;
            hooks_.request_stop({1, "vCPU " + std::to_string(index) + ": " + exit.error().message});
            return;
        }
        faults_in_a_row = 0;
        handle_exit(index, *exit);
    }
}

bool VcpuSet::retry_after_fault(const Error& error, unsigned& faults_in_a_row) {
    if (error.code != EFAULT || !hooks_.memory_fault) return false;
    // Another vCPU may have repaired the same fault a moment ago (repair() is serialised, so it has
    // finished by now): one more run without a repair of our own, but not two in a row.
    if (hooks_.memory_fault()) faults_in_a_row = 0;
    return ++faults_in_a_row <= 1;
}

void VcpuSet::complete_pending_io(unsigned index) {
    const VcpuFd& fd = vcpus_[index]->fd;
    // A rep-string I/O may exit again for its next chunk; a handful of rounds always suffices.
    for (int round = 0; round < 16; ++round) {
        fd.run_struct()->immediate_exit = 1;
        auto exit = fd.run();
        if (!exit || std::holds_alternative<Interrupted>(*exit)) return;
        handle_exit(index, *exit);
    }
}

void VcpuSet::handle_exit(unsigned index, const VcpuExit& exit) {
    std::visit(
        Overloaded{
            [&](const IoIn& io) {
                // guest-controlled: port and size; rep-ins arrives as `count` back-to-back items.
                size_t size = io.data.size() / io.count;
                for (uint32_t i = 0; i < io.count; ++i) {
                    auto item = io.data.subspan(i * size, size);
                    if (!pio_.read(io.port, item)) std::memset(item.data(), 0xff, item.size());
                }
            },
            [&](const IoOut& io) {
                size_t size = io.data.size() / io.count;
                for (uint32_t i = 0; i < io.count; ++i) pio_.write(io.port, io.data.subspan(i * size, size));
            },
            [&](const MmioRead& m) {
                if (!mmio_.read(m.addr, m.data)) std::memset(m.data.data(), 0xff, m.data.size());
            },
            [&](const MmioWrite& m) { mmio_.write(m.addr, m.data); },
            [&](const Hlt&) {},  // the in-kernel LAPIC handles HLT; a stray exit just resumes
            // Kite routes every I/O APIC pin as an edge-triggered MSI, so KVM asks for no EOI exits; one
            // that comes anyway has no Remote IRR to clear.
            [&](const IoapicEoi&) {},
            [&](const Interrupted&) {},
            // A guest that resets on purpose uses the ACPI reset register or the i8042 (status 0); a triple
            // fault is a crash (Linux falls back to one only when both failed), and CI must not read it as success.
            [&](const Shutdown&) {
                hooks_.request_stop({1, crash_report(index, vcpus_[index]->fd, "the guest triple-faulted (KVM_EXIT_SHUTDOWN)")});
            },
            [&](const SystemEvent& e) {
                if (e.type == KVM_SYSTEM_EVENT_CRASH)
                    hooks_.request_stop({1, "guest crashed (KVM_SYSTEM_EVENT_CRASH)"});
                else
                    hooks_.request_stop({0, e.type == KVM_SYSTEM_EVENT_RESET ? "guest reset" : "guest shutdown"});
            },
            [&](const MsrWrite& m) {
                if (!hooks_.msr_write || !hooks_.msr_write(index, m)) *m.error = 1;
            },
            [&](const MsrRead& m) {
                if (!hooks_.msr_read || !hooks_.msr_read(index, m)) *m.error = 1;
            },
            [&](const Hypercall& h) { *h.ret = static_cast<unsigned long long>(-1000); /* -KVM_ENOSYS */ },
            [&](const FailEntry& f) {
                hooks_.request_stop({1, "KVM entry failed, hardware reason " + std::to_string(f.reason)});
            },
            [&](const InternalError& e) {
                hooks_.request_stop(
                    {1, crash_report(index, vcpus_[index]->fd, "KVM internal error, suberror " + std::to_string(e.suberror))});
            },
            [&](const UnknownExit& u) {
                hooks_.request_stop({1, "unexpected KVM exit reason " + std::to_string(u.reason)});
            },
        },
        exit);
}

}  // namespace kite
