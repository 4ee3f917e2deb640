// A built, runnable VM: KVM fds, guest RAM, buses, devices, vCPUs and the VMM thread's event loop.
// VmBuilder (vmm/builder.h) creates it; run() drives it until the guest powers off, resets, writes the
// debug-exit port, or Kite gets SIGINT/SIGTERM.
#pragma once

#include <asio.hpp>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "devices/bus.h"
#include "devices/irq.h"
#include "memory/guest_ram.h"
#include "vmm/kvm/kvm.h"
#include "vmm/kvm/vcpu.h"

namespace kite {

// An interrupt line backed by a KVM irqfd: trigger() is one eventfd write, from any thread.
class IrqFdLine final : public IrqLine {
public:
    IrqFdLine(EventFd fd, uint32_t gsi) : fd_(std::move(fd)), gsi_(gsi) {}
    void trigger() override { (void)fd_.write(1); }
    int fd() const { return fd_.get(); }
    uint32_t gsi() const { return gsi_; }

private:
    EventFd fd_;
    uint32_t gsi_;
};

class Vm {
public:
    Vm(Kvm kvm, VmFd vm);
    ~Vm();
    Vm(const Vm&) = delete;
    Vm& operator=(const Vm&) = delete;

    // Runs the event loop on this thread until the VM stops; returns Kite's exit status.
    int run();
    // Thread-safe: the first reason wins; the event loop then winds the VM down.
    void request_stop(StopReason reason);
    // Thread-safe: the guest panicked and went on into a crash kernel (pvpanic CRASH_LOADED). The VM
    // runs on so the dump completes; however it then ends, cleanly or by a reboot, Kite reports the panic.
    // Returns true the first time.
    bool note_guest_panic();

    asio::io_context& io() { return io_; }
    const Kvm& kvm() const { return kvm_; }
    const VmFd& vm_fd() const { return vm_; }
    GuestRam& ram() { return ram_; }
    Bus& pio() { return pio_; }
    Bus& mmio() { return mmio_; }
    VcpuSet& vcpus() { return *vcpus_; }

    // Keeps an object alive as long as the VM (devices, irq lines, consoles). Destroyed after vCPUs stop.
    template <class T>
    T* keep(std::shared_ptr<T> object) {
        T* raw = object.get();
        owned_.push_back(std::move(object));
        return raw;
    }
    void set_vcpus(std::unique_ptr<VcpuSet> vcpus) { vcpus_ = std::move(vcpus); }
    // Called once the VM is stopped, before devices are destroyed (flush outputs, restore the terminal).
    void on_shutdown(std::function<void()> fn) { shutdown_hooks_.push_back(std::move(fn)); }
    // A line of device state for the SIGUSR1 report (the I/O APIC's routes, say). Register at build time.
    void add_diagnostic(std::function<std::string()> fn) { diagnostics_.push_back(std::move(fn)); }
    // What SIGUSR1 logs (VMM thread): every vCPU's describe() line and every diagnostic, the vCPUs paused
    // for the reading and resumed after unless they were paused already. The guest keeps running.
    void log_state();

    // Pause/resume all vCPUs (VMM thread). pause() returns once every vCPU is parked outside KVM_RUN.
    void pause();
    void resume();
    bool paused() const { return paused_; }

    // Devices whose state goes into snapshots, by unique name ("serial0"). Register at build time.
    struct DeviceStateHooks {
        std::string name;
        std::function<std::vector<uint8_t>()> save;
        std::function<Result<void>(std::span<const uint8_t>)> restore;
    };
    void add_device_state(DeviceStateHooks hooks) { device_states_.push_back(std::move(hooks)); }
    const std::vector<DeviceStateHooks>& device_states() const { return device_states_; }

private:
    asio::io_context io_;
    Kvm kvm_;
    VmFd vm_;
    GuestRam ram_;
    Bus pio_;
    Bus mmio_;
    std::vector<std::shared_ptr<void>> owned_;
    std::unique_ptr<VcpuSet> vcpus_;
    std::vector<std::function<void()>> shutdown_hooks_;
    std::vector<DeviceStateHooks> device_states_;
    std::vector<std::function<std::string()>> diagnostics_;
    bool paused_ = false;  // VMM thread only

    std::mutex stop_mutex_;
    std::optional<StopReason> stop_;  // guarded by stop_mutex_
    bool guest_panicked_ = false;      // guarded by stop_mutex_
};

}  // namespace kite
