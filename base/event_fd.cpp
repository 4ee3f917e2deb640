#include "base/event_fd.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <string>

namespace kite {

Result<EventFd> EventFd::create(bool nonblocking) {
    UniqueFd fd(::eventfd(0, EFD_CLOEXEC | (nonblocking ? EFD_NONBLOCK : 0)));
    if (!fd) return std::unexpected(errno_error("eventfd"));
    return EventFd(std::move(fd));
}

void EventFd::signal() const { signal_eventfd(borrow()); }

std::optional<uint64_t> EventFd::peek() const {
    std::ifstream info("/proc/self/fdinfo/" + std::to_string(fd_.get()));
    std::string key;
    while (info >> key) {
        if (key != "eventfd-count:") continue;
        uint64_t count = 0;
        if (info >> std::hex >> count) return count;  // the kernel prints it in hex
        return std::nullopt;
    }
    return std::nullopt;
}

Result<void> EventFd::write(uint64_t value) const {
    if (::write(fd_.get(), &value, sizeof value) != sizeof value && errno != EAGAIN)
        return std::unexpected(errno_error("eventfd write"));
    return {};
}

Result<uint64_t> EventFd::read() const {
    uint64_t value = 0;
    if (::read(fd_.get(), &value, sizeof value) != sizeof value) {
        if (errno == EAGAIN) return 0;
        return std::unexpected(errno_error("eventfd read"));
    }
    return value;
}

void signal_eventfd(BorrowedFd fd) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(fd.get(), &one, sizeof one);
}

}  // namespace kite
