// ReconnectPolicy alone: attempts driven by an asio loop with a fake attempt, no back-end. The loop runs
// out of work when a round ends, so io.run() returns exactly then.
#include <doctest/doctest.h>

#include <asio.hpp>

#include "vhost/reconnect_policy.h"

using namespace kite;
using namespace kite::vhost;

namespace {

using Outcome = ReconnectPolicy::Outcome;

struct PolicyFixture {
    explicit PolicyFixture(Outcome outcome, Millis timeout = Millis(1000))
        : policy(io, Millis(2), timeout, [this, outcome] {
              ++attempts;
              return ReconnectPolicy::Attempt{outcome, "attempt " + std::to_string(attempts)};
          },
          [this](const std::string& why) {
              ++give_ups;
              last_why = why;
          }) {}

    asio::io_context io;
    int attempts = 0;
    int give_ups = 0;
    std::string last_why;
    ReconnectPolicy policy;
};

}  // namespace

TEST_CASE("a successful attempt ends the round without giving up") {
    PolicyFixture f(Outcome::kDone);

    f.policy.schedule();
    bool running = f.policy.running();
    f.io.run();

    CHECK(running);
    CHECK(f.attempts == 1);
    CHECK(f.give_ups == 0);
    CHECK_FALSE(f.policy.running());
}

TEST_CASE("failed attempts are retried until the timeout, then the round gives up once with the last reason") {
    PolicyFixture f(Outcome::kRetry, Millis(30));

    f.policy.schedule();
    f.io.run();

    CHECK(f.attempts >= 2);
    CHECK(f.give_ups == 1);
    CHECK(f.last_why == "attempt " + std::to_string(f.attempts));
    CHECK_FALSE(f.policy.running());
}

TEST_CASE("a refusal gives up at once, before the timeout") {
    PolicyFixture f(Outcome::kGiveUp);

    f.policy.schedule();
    f.io.run();

    CHECK(f.attempts == 1);
    CHECK(f.give_ups == 1);
    CHECK(f.last_why == "attempt 1");
}

TEST_CASE("a destroyed policy makes no more attempts") {
    asio::io_context io;
    int attempts = 0;
    auto policy = std::make_unique<ReconnectPolicy>(
        io, Millis(2), Millis(1000), [&] {
            ++attempts;
            return ReconnectPolicy::Attempt{Outcome::kRetry, "no back-end"};
        },
        [](const std::string&) {});

    policy->schedule();
    policy.reset();
    io.run();

    CHECK(attempts == 0);
}
