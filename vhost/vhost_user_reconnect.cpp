// Reconnect of a VhostUserDevice (see vhost_user_device.h): noticing that the back-end is gone, tearing
// the dead connection down, and retrying the socket on the VMM loop (a timer, never a blocking wait) until
// the reconnect timeout. The replay itself is handshake(false) + start_device(false).
#include <sys/socket.h>

#include <cerrno>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/asio_loop.h"
#include "base/event_fd.h"
#include "base/fd_watcher.h"
#include "vhost/vhost_user_device.h"

namespace kite::vhost {

struct VhostUserDevice::Timer {
    explicit Timer(asio::io_context& io) : timer(io) {}
    asio::steady_timer timer;
};

// Here, where Timer and FdWatcher are complete types.
VhostUserDevice::VhostUserDevice(VhostUserDeviceConfig config, std::vector<VhostMemoryRegion> memory)
    : config_(std::move(config)), memory_(std::move(memory)), tracer_(config_.trace) {}

VhostUserDevice::~VhostUserDevice() {
    *alive_ = false;
    socket_watcher_.reset();
    reconnect_timer_.reset();
}

void VhostUserDevice::watch_socket() {
    std::weak_ptr<bool> alive = alive_;
    auto watcher = FdWatcher::create(*io_, frontend_->fd(), FdWatcher::Mode::kLevel, [this, alive] {
        if (auto a = alive.lock(); a && *a) on_socket_readable();
    });
    if (!watcher) {
        spdlog::warn("vhost-user '{}': cannot watch the socket ({}); a lost back-end shows at the next request",
                     config_.socket_path, watcher.error().message);
        return;
    }
    socket_watcher_ = std::move(*watcher);
}

void VhostUserDevice::on_socket_readable() {
    // Between requests the back-end has nothing to say on the main socket: readable means it hung up, or
    // broke the protocol. A reply that a request already consumed leaves nothing to peek.
    if (!online()) return;
    char byte;
    ssize_t n = ::recv(frontend_->fd(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n > 0) {
        tracer_.violation("back-end sent a message on the main socket that answers no request");
        lose_connection("unsolicited message on the main socket");
        return;
    }
    lose_connection(n == 0 ? "the back-end closed the socket" : errno_error("socket").message);
}

void VhostUserDevice::check_connection(const Error& error) {
    if (frontend_ != nullptr && !frontend_->connected()) lose_connection(error.message);
}

void VhostUserDevice::lose_connection(std::string why) {
    if (lost_ || frontend_ == nullptr) return;
    lost_ = true;
    if (socket_watcher_) socket_watcher_->pause();
    spdlog::warn("vhost-user '{}': back-end lost ({}); reconnecting for up to {} ms", config_.socket_path, why,
                 config_.reconnect_timeout.count());
    tracer_.note(fmt::format("back-end lost: {}", why));
    // The caller may be running inside the connection (the backend channel's handler): tear it down from a
    // handler of its own.
    std::weak_ptr<bool> alive = alive_;
    asio::post(*io_, [this, alive] {
        if (auto a = alive.lock(); a && *a) drop_connection();
    });
}

void VhostUserDevice::drop_connection() {
    socket_watcher_.reset();
    frontend_.reset();  // closes the main socket and the backend channel
    // Whatever the dead back-end mapped goes with it (the channel may not have noticed yet).
    shm_->clear();
    started_queues_.clear();
    lost_ = false;
    schedule_reconnect();
}

void VhostUserDevice::schedule_reconnect() {
    if (!reconnecting_) {
        reconnecting_ = true;
        reconnect_deadline_ = std::chrono::steady_clock::now() + config_.reconnect_timeout;
    }
    if (!reconnect_timer_) reconnect_timer_ = std::make_unique<Timer>(*io_);
    std::weak_ptr<bool> alive = alive_;
    reconnect_timer_->timer.expires_after(config_.reconnect_interval);
    reconnect_timer_->timer.async_wait([this, alive](const asio::error_code& ec) {
        auto a = alive.lock();
        if (ec || !a || !*a) return;
        try_reconnect();
    });
}

void VhostUserDevice::try_reconnect() {
    if (online()) {
        reconnecting_ = false;
        return;
    }
    auto conn = Connection::connect(config_.socket_path, Millis(0));
    std::string why;
    if (conn) {
        frontend_ = std::make_unique<Frontend>(std::move(*conn), FrontendOptions{config_.timeout, config_.trace});
        const std::vector<uint8_t> old_config = config_space();
        auto ok = handshake(false);
        if (ok && active_) ok = start_device(false);
        if (ok) {
            reconnecting_ = false;
            ++reconnects_;
            watch_socket();
            spdlog::warn("vhost-user '{}': back-end reconnected, {} ring(s) resumed", config_.socket_path,
                         started_queues_.size());
            tracer_.note("back-end reconnected; state replayed");
            // The dead back-end may have consumed a kick without serving it, or completed requests without an
            // interrupt: kick every ring and let the driver look at its used rings once.
            for (uint32_t i : started_queues_) {
                if (i < active_->kick_fds.size()) signal_eventfd(BorrowedFd(active_->kick_fds[i]));
                if (interrupt_ != nullptr) interrupt_->signal_used_queue(static_cast<uint16_t>(i));
            }
            // A back-end that came back with another config space (a resized disk, say): the driver must
            // look, and the transport copies the new space into its register page.
            if (config_space() != old_config && interrupt_ != nullptr) interrupt_->signal_config_change();
            return;
        }
        // A back-end that answers but refuses (features or shm regions changed) will not get better.
        bool refused = frontend_->connected();
        why = ok.error().message;
        frontend_.reset();
        shm_->clear();
        started_queues_.clear();
        if (refused) {
            give_up(why);
            return;
        }
    } else {
        why = conn.error().message;
    }
    if (std::chrono::steady_clock::now() >= reconnect_deadline_) {
        give_up(why);
        return;
    }
    schedule_reconnect();
}

void VhostUserDevice::give_up(const std::string& why) {
    reconnecting_ = false;
    spdlog::error("vhost-user '{}': no usable back-end within {} ms ({}); the device needs a reset", config_.socket_path,
                  config_.reconnect_timeout.count(), why);
    tracer_.note(fmt::format("reconnect given up: {}", why));
    // The driver learns through DEVICE_NEEDS_RESET; its next activate() starts a new round of attempts.
    if (interrupt_ != nullptr) interrupt_->needs_reset();
}

}  // namespace kite::vhost
