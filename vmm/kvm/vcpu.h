// vCPU threads: one per vCPU, running KVM_RUN and dispatching PIO/MMIO exits to the buses on that thread.
// The VMM thread stops, pauses and resumes them through VcpuSet; a kick is immediate_exit plus a signal so
// a vCPU inside KVM_RUN comes back at once.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "devices/bus.h"
#include "vmm/kvm/kvm.h"

namespace kite {

// Why the VM stopped running, as reported by a vCPU or a device.
struct StopReason {
    int exit_code = 0;
    std::string why;
};

// Hooks a vCPU calls on exits that are not bus accesses. Each returns true if it handled the exit.
struct VcpuHooks {
    std::function<void(StopReason)> request_stop;                // guest poweroff/reset/crash: stop the VM
    std::function<bool(unsigned vcpu, const MsrWrite&)> msr_write;  // optional (mirror VM option 2)
    std::function<bool(unsigned vcpu, const MsrRead&)> msr_read;    // optional
    // Optional: KVM_RUN failed with EFAULT (guest memory the host cannot back). Returns true when it
    // changed what the guest sees (ShmMemslots::repair), so the vCPU runs again instead of stopping.
    std::function<bool()> memory_fault;
};

class VcpuSet {
public:
    VcpuSet(Bus& pio, Bus& mmio, VcpuHooks hooks);
    ~VcpuSet();
    VcpuSet(const VcpuSet&) = delete;
    VcpuSet& operator=(const VcpuSet&) = delete;

    void add(VcpuFd vcpu);
    size_t size() const { return vcpus_.size(); }
    const VcpuFd& vcpu(size_t i) const { return vcpus_[i]->fd; }

    // Starts one thread per vCPU.
    void start();
    // Makes every vCPU leave KVM_RUN and park; returns when all are parked. Idempotent.
    void pause();
    void resume();
    // Stops and joins every vCPU thread. Idempotent.
    void stop();
    // Only while paused: one line on where vCPU i is (rip, rsp, rflags, cr3, run state) and its local APIC's
    // task priority and the vectors in service and pending, for whoever debugs a hung guest.
    std::string describe(size_t i) const;

private:
    struct Vcpu {
        explicit Vcpu(VcpuFd f) : fd(std::move(f)) {}
        VcpuFd fd;
        std::thread thread;
    };
    void run_loop(unsigned index);
    void handle_exit(unsigned index, const VcpuExit& exit);
    // After KVM_RUN failed: whether to run again (an EFAULT that memory_fault repaired).
    bool retry_after_fault(const Error& error, unsigned& faults_in_a_row);
    // Before parking: one KVM_RUN with immediate_exit so KVM completes an I/O exit already handled.
    void complete_pending_io(unsigned index);
    void kick_all();

    Bus& pio_;
    Bus& mmio_;
    VcpuHooks hooks_;
    std::vector<std::unique_ptr<Vcpu>> vcpus_;

    std::mutex mutex_;
    std::condition_variable cv_;
    bool pause_requested_ = false;  // guarded by mutex_
    bool stop_requested_ = false;   // guarded by mutex_
    unsigned parked_ = 0;           // guarded by mutex_
    unsigned exited_ = 0;           // guarded by mutex_: threads that left run_loop
    // Read by vCPU threads between KVM_RUN calls without the lock; written under mutex_ before a kick.
    // Pairs with the store in pause()/stop(): a vCPU that misses it is kicked out of KVM_RUN anyway.
    std::atomic<bool> attention_{false};
};

}  // namespace kite
