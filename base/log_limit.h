// Rate-limited warnings for guest-triggered events: a hostile guest must not be able to flood the
// host log. At most `burst` messages per `period`; the next allowed message reports how many were
// dropped. Safe from any thread.
#pragma once

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <utility>

namespace kite {

class LogLimit {
public:
    explicit LogLimit(unsigned burst = 10, std::chrono::steady_clock::duration period = std::chrono::seconds(5))
        : burst_(burst), period_(period) {}

    template <class... Args>
    void warn(spdlog::format_string_t<Args...> format, Args&&... args) {
        log(spdlog::level::warn, format, std::forward<Args>(args)...);
    }
    template <class... Args>
    void error(spdlog::format_string_t<Args...> format, Args&&... args) {
        log(spdlog::level::err, format, std::forward<Args>(args)...);
    }

private:
    template <class... Args>
    void log(spdlog::level::level_enum level, spdlog::format_string_t<Args...> format, Args&&... args) {
        uint64_t dropped = 0;
        if (!allow(dropped)) return;
        if (dropped > 0) spdlog::log(level, "({} similar messages suppressed)", dropped);
        spdlog::log(level, format, std::forward<Args>(args)...);
    }

    bool allow(uint64_t& dropped) {
        std::lock_guard lock(mutex_);
        auto now = std::chrono::steady_clock::now();
        if (now - window_start_ >= period_) {
            window_start_ = now;
            in_window_ = 0;
        }
        if (in_window_ >= burst_) {
            ++dropped_;
            return false;
        }
        ++in_window_;
        dropped = std::exchange(dropped_, 0);
        return true;
    }

    std::mutex mutex_;
    unsigned burst_;
    std::chrono::steady_clock::duration period_;
    std::chrono::steady_clock::time_point window_start_{};
    unsigned in_window_ = 0;
    uint64_t dropped_ = 0;
};

}  // namespace kite
