#include "vhost/reconnect_policy.h"

#include "base/asio_loop.h"

namespace kite::vhost {

struct ReconnectPolicy::Timer {
    explicit Timer(asio::io_context& io) : timer(io) {}
    asio::steady_timer timer;
};

ReconnectPolicy::ReconnectPolicy(asio::io_context& io, Millis interval, Millis timeout, AttemptFn attempt,
                                 GiveUpFn give_up)
    : attempt_(std::move(attempt)), give_up_(std::move(give_up)), interval_(interval), timeout_(timeout),
      timer_(std::make_unique<Timer>(io)) {}

ReconnectPolicy::~ReconnectPolicy() {
    *alive_ = false;
    timer_.reset();
}

void ReconnectPolicy::schedule() {
    if (!running_) {
        running_ = true;
        deadline_ = std::chrono::steady_clock::now() + timeout_;
    }
    std::weak_ptr<bool> alive = alive_;
    timer_->timer.expires_after(interval_);
    timer_->timer.async_wait([this, alive](const asio::error_code& ec) {
        auto a = alive.lock();
        if (ec || !a || !*a) return;
        attempt();
    });
}

void ReconnectPolicy::attempt() {
    Attempt result = attempt_();
    if (result.outcome == Outcome::kDone) {
        running_ = false;
        return;
    }
    if (result.outcome == Outcome::kRetry && std::chrono::steady_clock::now() < deadline_) {
        schedule();
        return;
    }
    running_ = false;
    give_up_(result.why);
}

}  // namespace kite::vhost
