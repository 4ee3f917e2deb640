#include "vmm/mirror/watchdog.h"

#include <pthread.h>
#include <unistd.h>

#include <utility>

#include "vmm/kvm/run_signals.h"

namespace kite {

Result<Watchdog> Watchdog::arm(std::chrono::milliseconds timeout) {
    install_run_interrupt_handler(watchdog_signal());
    sigevent ev{};
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = watchdog_signal();
    ev._sigev_un._tid = ::gettid();  // sigev_notify_thread_id: glibc 2.36 does not name it in C++
    timer_t timer;
    if (::timer_create(CLOCK_MONOTONIC, &ev, &timer) < 0) return std::unexpected(errno_error("timer_create (watchdog)"));
    auto ms = timeout.count() > 0 ? timeout.count() : 1;
    itimerspec spec{};
    spec.it_value.tv_sec = ms / 1000;
    spec.it_value.tv_nsec = (ms % 1000) * 1000000;
    spec.it_interval.tv_nsec = 1000000;
    if (::timer_settime(timer, 0, &spec, nullptr) < 0) {
        Error e = errno_error("timer_settime (watchdog)");
        ::timer_delete(timer);
        return std::unexpected(e);
    }
    sigset_t unblock, old;
    sigemptyset(&unblock);
    sigaddset(&unblock, watchdog_signal());
    pthread_sigmask(SIG_UNBLOCK, &unblock, &old);
    return Watchdog(timer, old, std::chrono::steady_clock::now() + timeout);
}

Watchdog::Watchdog(Watchdog&& other) noexcept
    : timer_(other.timer_), old_mask_(other.old_mask_), deadline_(other.deadline_),
      armed_(std::exchange(other.armed_, false)) {}

Watchdog::~Watchdog() {
    if (!armed_) return;
    ::timer_delete(timer_);
    // A signal already queued is delivered now, to the no-op handler, before the old mask returns.
    pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
}

bool Watchdog::expired() const { return std::chrono::steady_clock::now() >= deadline_; }

}  // namespace kite
