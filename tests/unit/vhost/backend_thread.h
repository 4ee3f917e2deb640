// Runs a vhost::Backend on its own thread for session tests: it accepts one front-end on a socket path,
// answers its messages, and between messages runs actions the test posts (so the back-end can send
// SHMEM_MAP while the test thread, as the VMM, serves the backend channel).
#pragma once

#include <poll.h>

#include <atomic>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "vhost/backend/backend.h"
#include "vhost/backend_channel.h"

namespace kite::test {

class BackendThread {
public:
    BackendThread(std::string path, vhost::BackendConfig config, std::function<void(vhost::Backend&)> setup = {})
        : thread_([this, path, config = std::move(config), setup = std::move(setup)]() mutable {
              run(path, std::move(config), setup);
          }) {}
    ~BackendThread() {
        stop_ = true;
        thread_.join();
    }

    // Runs `action` on the back-end thread; the future holds its result.
    template <class F>
    auto post(F action) -> std::future<decltype(action(std::declval<vhost::Backend&>()))> {
        using T = decltype(action(std::declval<vhost::Backend&>()));
        auto task = std::make_shared<std::packaged_task<T(vhost::Backend&)>>(std::move(action));
        auto future = task->get_future();
        std::lock_guard lock(mutex_);
        actions_.push_back([task](vhost::Backend& b) { (*task)(b); });
        return future;
    }

private:
    void run(const std::string& path, vhost::BackendConfig config, const std::function<void(vhost::Backend&)>& setup) {
        auto backend = vhost::Backend::accept_one(path, std::move(config), vhost::Millis(5000));
        if (!backend) return;
        if (setup) setup(**backend);
        while (!stop_) {
            run_actions(**backend);
            pollfd pfd{(*backend)->fd(), POLLIN, 0};
            if (::poll(&pfd, 1, 5) <= 0) continue;
            auto more = (*backend)->handle_one(vhost::Millis(1000));
            if (!more || !*more) break;
        }
        run_actions(**backend);
    }
    void run_actions(vhost::Backend& backend) {
        std::deque<std::function<void(vhost::Backend&)>> todo;
        {
            std::lock_guard lock(mutex_);
            todo.swap(actions_);
        }
        for (auto& action : todo) action(backend);
    }

    std::atomic<bool> stop_{false};  // written by the destructor, read by the loop; no other data depends on it
    std::mutex mutex_;
    std::deque<std::function<void(vhost::Backend&)>> actions_;
    std::thread thread_;
};

// Waits for `future` while serving the backend channel, as the VMM thread would.
template <class T>
T serve_until(std::future<T>& future, vhost::BackendChannel& channel) {
    while (future.wait_for(std::chrono::milliseconds(1)) != std::future_status::ready) channel.serve_pending();
    return future.get();
}

}  // namespace kite::test
