#include "vmm/kvm/run_signals.h"

#include <signal.h>

#include <mutex>

namespace kite {

int vcpu_kick_signal() { return SIGRTMIN + 1; }
int watchdog_signal() { return SIGRTMIN + 2; }

void install_run_interrupt_handler(int signo) {
    static std::mutex mutex;
    static sigset_t installed = [] {
        sigset_t set;
        sigemptyset(&set);
        return set;
    }();
    std::lock_guard lock(mutex);
    if (sigismember(&installed, signo) == 1) return;
    struct sigaction sa {};
    sa.sa_handler = [](int) {};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return EINTR
    sigaction(signo, &sa, nullptr);
    sigaddset(&installed, signo);
}

}  // namespace kite
