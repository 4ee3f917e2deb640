// EventFd: the one eventfd type. Non-blocking counters that KVM (ioeventfd, irqfd), vhost-user
// back-ends, io_uring and the VMM thread share.
#pragma once

#include <cstdint>
#include <optional>

#include "base/error.h"
#include "base/fd.h"

namespace kite {

class EventFd {
public:
    EventFd() = default;
    // A new eventfd with counter 0, close-on-exec; non-blocking unless asked otherwise.
    static Result<EventFd> create(bool nonblocking = true);

    int get() const { return fd_.get(); }
    BorrowedFd borrow() const { return BorrowedFd(fd_); }
    bool valid() const { return fd_.valid(); }
    explicit operator bool() const { return valid(); }

    // Adds 1 and never fails or blocks (see signal_eventfd).
    void signal() const;
    Result<void> write(uint64_t value = 1) const;
    // Returns the counter and resets it; 0 if nothing was signalled (non-blocking fd).
    Result<uint64_t> read() const;
    // The counter, left as it is (from /proc/self/fdinfo): for diagnostics, e.g. a kick nobody consumed.
    std::optional<uint64_t> peek() const;

private:
    explicit EventFd(UniqueFd fd) : fd_(std::move(fd)) {}
    UniqueFd fd_;
};

// Adds 1 to an eventfd Kite holds only borrowed (a transport's kick or call fd handed to a device).
// EAGAIN only happens when the counter is at its maximum: the reader is then certain to wake up anyway.
void signal_eventfd(BorrowedFd fd);

}  // namespace kite
