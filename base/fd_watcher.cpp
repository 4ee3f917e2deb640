#include "base/fd_watcher.h"

#include <fcntl.h>
#include <unistd.h>

#include "base/asio_loop.h"
#include <cstdint>

#include "base/fd.h"

namespace kite {

struct FdWatcher::State {
    asio::posix::stream_descriptor descriptor;
    Mode mode;
    std::function<void()> on_readable;
    bool waiting = false;  // an async_wait is outstanding
    bool paused = false;
    bool stopped = false;

    State(asio::io_context& io, int fd, Mode m, std::function<void()> cb)
        : descriptor(io, fd), mode(m), on_readable(std::move(cb)) {}
};

namespace {

void arm(const std::shared_ptr<FdWatcher::State>& state) {
    if (state->waiting || state->paused || state->stopped) return;
    state->waiting = true;
    // The handler holds the state alive until it has run, even after the watcher is gone.
    state->descriptor.async_wait(asio::posix::stream_descriptor::wait_read, [state](const asio::error_code& ec) {
        state->waiting = false;
        if (ec || state->stopped || state->paused) return;
        if (state->mode == FdWatcher::Mode::kDrainEventfd) {
            uint64_t count;
            [[maybe_unused]] ssize_t n = ::read(state->descriptor.native_handle(), &count, sizeof count);
        }
        state->on_readable();
        arm(state);
    });
}

}  // namespace

Result<std::unique_ptr<FdWatcher>> FdWatcher::create(asio::io_context& io, int fd, Mode mode,
                                                     std::function<void()> on_readable) {
    UniqueFd dup(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
    if (!dup) return std::unexpected(errno_error("dup of a watched fd"));
    auto state = std::make_shared<State>(io, dup.release(), mode, std::move(on_readable));
    arm(state);
    return std::unique_ptr<FdWatcher>(new FdWatcher(std::move(state)));
}

FdWatcher::~FdWatcher() {
    state_->stopped = true;
    asio::error_code ignored;
    state_->descriptor.cancel(ignored);
}

void FdWatcher::pause() { state_->paused = true; }

void FdWatcher::resume() {
    state_->paused = false;
    arm(state_);
}

}  // namespace kite
