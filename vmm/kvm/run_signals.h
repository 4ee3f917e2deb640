// Real-time signals that interrupt a thread's KVM_RUN. Their handlers do nothing: the point is that the
// ioctl returns EINTR. Each use has its own signal so that two never interfere.
#pragma once

namespace kite {

// Kicks a vCPU thread out of KVM_RUN (pause, stop; vmm/kvm/vcpu.cpp).
int vcpu_kick_signal();
// Ends a mirror helper's run that took too long (vmm/mirror/watchdog.cpp).
int watchdog_signal();

// Installs the do-nothing handler for `signo`, without SA_RESTART; once per signal, from any thread.
void install_run_interrupt_handler(int signo);

}  // namespace kite
