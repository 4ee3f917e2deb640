// When a vhost-user device tries its back-end again after losing it: an attempt every `interval` on the
// VMM loop (a timer, never a blocking wait) until one succeeds, one says retrying is pointless (a back-end
// that answers but refuses will not get better), or `timeout` has passed since the round began. What an
// attempt does (connect and replay) is the connection's business, not this class's.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "vhost/socket.h"

namespace asio {
class io_context;
}

namespace kite::vhost {

class ReconnectPolicy {
public:
    enum class Outcome {
        kDone,    // online again (or already): the round ends
        kRetry,   // no usable back-end yet
        kGiveUp,  // a back-end answered and refused: no point in trying again this round
    };
    struct Attempt {
        Outcome outcome = Outcome::kDone;
        std::string why;  // for kRetry and kGiveUp
    };
    using AttemptFn = std::function<Attempt()>;
    // Called once per round that ends without a back-end, with the last failure.
    using GiveUpFn = std::function<void(const std::string& why)>;

    ReconnectPolicy(asio::io_context& io, Millis interval, Millis timeout, AttemptFn attempt, GiveUpFn give_up);
    ~ReconnectPolicy();
    ReconnectPolicy(const ReconnectPolicy&) = delete;
    ReconnectPolicy& operator=(const ReconnectPolicy&) = delete;

    // Starts a round (its deadline is now + timeout) unless one runs, and makes the next attempt one
    // interval from now.
    void schedule();
    // A round is running: attempts are scheduled.
    bool running() const { return running_; }

private:
    void attempt();

    AttemptFn attempt_;
    GiveUpFn give_up_;
    Millis interval_;
    Millis timeout_;
    struct Timer;  // an asio::steady_timer, kept out of this header
    std::unique_ptr<Timer> timer_;
    std::chrono::steady_clock::time_point deadline_;
    bool running_ = false;
    // Timer handlers hold a weak copy; the destructor clears it.
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace kite::vhost
