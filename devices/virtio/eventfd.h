// Eventfds as the transports use them: non-blocking counters that KVM (ioeventfd, irqfd), vhost-user
// back-ends and the VMM thread share.
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "memory/error.h"
#include "memory/fd.h"

namespace kite {

inline Result<UniqueFd> make_eventfd() {
    UniqueFd fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!fd) return std::unexpected(errno_error("eventfd"));
    return fd;
}

inline void signal_eventfd(int fd) {
    uint64_t one = 1;
    // EAGAIN only if the counter is at its maximum: the reader is then certain to wake up anyway.
    [[maybe_unused]] ssize_t n = ::write(fd, &one, sizeof one);
}

}  // namespace kite
