#include "vmm/vm.h"

#include <spdlog/spdlog.h>

#include <csignal>
#include <utility>

#include "vmm/config/exit_status.h"

namespace kite {

Vm::Vm(Kvm kvm, VmFd vm) : kvm_(std::move(kvm)), vm_(std::move(vm)) {}

Vm::~Vm() {
    // vCPU threads first: they call into devices and the buses.
    if (vcpus_) vcpus_->stop();
    vcpus_.reset();
    owned_.clear();
}

void Vm::pause() {
    if (paused_) return;
    vcpus_->pause();
    paused_ = true;
}

void Vm::resume() {
    if (!paused_) return;
    vcpus_->resume();
    paused_ = false;
}

void Vm::request_stop(StopReason reason) {
    {
        std::lock_guard lock(stop_mutex_);
        if (stop_) return;
        if (guest_panicked_ && (reason.exit_code == kExitOk || reason.exit_code == kExitGuestRebooted)) {
            reason.why += " after a guest kernel panic";
            reason.exit_code = kExitGuestPanicked;
        }
        stop_ = std::move(reason);
    }
    asio::post(io_, [this] { io_.stop(); });
}

bool Vm::note_guest_panic() {
    std::lock_guard lock(stop_mutex_);
    return !std::exchange(guest_panicked_, true);
}

void Vm::log_state() {
    const bool was_paused = paused_;
    pause();
    spdlog::warn("state on SIGUSR1 ({}):", was_paused ? "paused" : "running; the vCPUs paused for the reading");
    for (size_t i = 0; i < vcpus_->size(); ++i) spdlog::warn("  {}", vcpus_->describe(i));
    for (const auto& fn : diagnostics_) spdlog::warn("  {}", fn());
    if (!was_paused) resume();
}

int Vm::run() {
    asio::signal_set signals(io_, SIGINT, SIGTERM, SIGHUP);
    signals.async_wait([this](std::error_code ec, int sig) {
        if (ec) return;
        request_stop({128 + sig, std::string("stopped by signal ") + strsignal(sig)});
    });
    // SIGUSR1: where the guest is, without stopping it (tests/e2e/lib.sh sends it to a hung run).
    asio::signal_set report(io_, SIGUSR1);
    std::function<void()> wait_report = [&] {
        report.async_wait([&](std::error_code ec, int) {
            if (ec) return;
            log_state();
            wait_report();
        });
    };
    wait_report();
    // SIGPIPE from a closed serial output or a dead vhost-user peer must not kill the VMM.
    std::signal(SIGPIPE, SIG_IGN);

    vcpus_->start();
    auto work = asio::make_work_guard(io_);
    io_.run();

    vcpus_->stop();
    for (auto& hook : shutdown_hooks_) hook();
    std::lock_guard lock(stop_mutex_);
    StopReason reason = stop_.value_or(StopReason{1, "event loop ended unexpectedly"});
    if (reason.exit_code == 0)
        spdlog::info("{}", reason.why);
    else
        spdlog::warn("{} (exit status {})", reason.why, reason.exit_code);
    return reason.exit_code;
}

}  // namespace kite
