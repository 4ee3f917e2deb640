// Watchdog: while armed, interrupts the calling thread's KVM_RUN so a helper that never halts cannot hang
// the VMM. A POSIX timer sends a real-time signal (whose handler does nothing: the point is EINTR) to the
// thread that armed it, first after `timeout`, then every millisecond: a signal that lands just before the
// thread enters KVM_RUN is followed by another one inside it. The signal is unblocked for the armed
// thread while armed and the previous mask restored on disarm.
#pragma once

#include <signal.h>
#include <time.h>

#include <chrono>

#include "base/error.h"

namespace kite {

class Watchdog {
public:
    static Result<Watchdog> arm(std::chrono::milliseconds timeout);
    Watchdog(Watchdog&& other) noexcept;
    Watchdog& operator=(Watchdog&&) = delete;
    Watchdog(const Watchdog&) = delete;
    ~Watchdog();

    bool expired() const;

private:
    Watchdog(timer_t timer, sigset_t old_mask, std::chrono::steady_clock::time_point deadline)
        : timer_(timer), old_mask_(old_mask), deadline_(deadline), armed_(true) {}
    timer_t timer_{};
    sigset_t old_mask_{};
    std::chrono::steady_clock::time_point deadline_;
    bool armed_ = false;
};

}  // namespace kite
