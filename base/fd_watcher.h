// Runs a callback on the VMM thread whenever a file descriptor becomes readable: queue kick eventfds,
// a tap fd, the io_uring completion eventfd. The watcher watches a dup of the fd (the original stays
// with its owner). After destruction (or pause()) the callback never runs again, even for a wake-up
// that was already queued in the io_context.
#pragma once

#include <functional>
#include <memory>

#include "base/error.h"

namespace asio {
class io_context;
}

namespace kite {

class FdWatcher {
public:
    enum class Mode {
        kLevel,         // the callback consumes the data (tap)
        kDrainEventfd,  // the watcher reads the eventfd counter back to 0 before calling back
    };

    static Result<std::unique_ptr<FdWatcher>> create(asio::io_context& io, int fd, Mode mode,
                                                     std::function<void()> on_readable);
    ~FdWatcher();

    // Stops calling back until resume(): a device with nowhere to put data stops watching its source.
    void pause();
    void resume();

    struct State;

private:
    explicit FdWatcher(std::shared_ptr<State> state) : state_(std::move(state)) {}
    std::shared_ptr<State> state_;
};

}  // namespace kite
