#include "vmm/output_sink.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>
#include <memory>

#include "base/event_fd.h"

namespace kite {

struct OutputSink::State {
    std::string what;
    UniqueFd fd;   // invalid: output is off
    EventFd wake;  // to the writer thread: the buffer stopped being empty, or finish()
    std::thread writer;

    std::mutex mutex;
    std::condition_variable exited_cv;
    // kCapacity bytes, left uninitialised: a page costs memory only once output reaches it, and the
    // writer starts over at 0 whenever it drains, so only the largest backlog is ever touched.
    std::unique_ptr<uint8_t[]> ring;  // [head, head + size) modulo kCapacity is pending output
    size_t head = 0;
    size_t size = 0;
    uint64_t dropped = 0;
    bool accepting = true;  // false after finish() or a failed write: everything is dropped
    bool stopping = false;  // finish() called: flush until `deadline`, then exit
    bool exited = false;    // the writer thread is done with the fd
    std::chrono::steady_clock::time_point deadline;
};

namespace {

// The writer thread: waits for data and for the fd to take it, writes, repeats until finish().
void write_out(const std::shared_ptr<OutputSink::State>& s) {
    for (;;) {
        const uint8_t* data = nullptr;
        size_t n = 0;
        int timeout_ms = -1;
        {
            std::lock_guard lock(s->mutex);
            if (s->stopping) {
                auto now = std::chrono::steady_clock::now();
                if (s->size == 0 || now >= s->deadline) break;
                timeout_ms = int(std::chrono::ceil<std::chrono::milliseconds>(s->deadline - now).count());
            }
            // Producers only write into the free part of the ring: these bytes stay put until head moves.
            data = s->ring.get() + s->head;
            n = std::min({s->size, OutputSink::kCapacity - s->head, size_t{PIPE_BUF}});
        }
        pollfd fds[2] = {{s->wake.get(), POLLIN, 0}, {n > 0 ? s->fd.get() : -1, POLLOUT, 0}};
        if (::poll(fds, 2, timeout_ms) < 0 && errno != EINTR) break;
        if (fds[0].revents & POLLIN) (void)s->wake.read();
        if (n == 0 || fds[1].revents == 0) continue;
        ssize_t w = ::write(s->fd.get(), data, n);
        if (w < 0 && (errno == EINTR || errno == EAGAIN)) continue;  // EAGAIN: someone set O_NONBLOCK
        std::lock_guard lock(s->mutex);
        if (w <= 0) {  // the output is gone (a closed pipe, a full disk): drop from now on
            s->accepting = false;
            s->dropped += s->size;
            s->size = 0;
            continue;
        }
        s->size -= size_t(w);
        s->head = s->size == 0 ? 0 : (s->head + size_t(w)) % OutputSink::kCapacity;
    }
    std::lock_guard lock(s->mutex);
    s->dropped += s->size;
    s->size = 0;
    s->accepting = false;
    s->exited = true;
    s->exited_cv.notify_all();
}

}  // namespace

Result<std::shared_ptr<OutputSink>> OutputSink::open(const OutputConfig& config, std::string_view what) {
    auto state = std::make_shared<State>();
    state->what = what;
    switch (config.mode) {
    case OutputConfig::Mode::Off: return std::shared_ptr<OutputSink>(new OutputSink(std::move(state)));
    case OutputConfig::Mode::Stdio:
        // A dup shares stdout's file description (and its flags): nothing about stdout changes.
        state->fd = UniqueFd(::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 0));
        if (!state->fd) return std::unexpected(errno_error(std::string(what) + " output: dup of stdout"));
        break;
    case OutputConfig::Mode::File:
        state->fd = UniqueFd(::open(config.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
        if (!state->fd) return std::unexpected(errno_error(std::string(what) + " output file " + config.path));
        break;
    }
    auto wake = EventFd::create();
    if (!wake) return std::unexpected(wake.error());
    state->wake = std::move(*wake);
    state->ring.reset(new uint8_t[kCapacity]);
    try {
        state->writer = std::thread([state] { write_out(state); });
    } catch (const std::system_error& e) {
        return fail(std::string(what) + " output: cannot start its writer thread: " + e.what());
    }
    return std::shared_ptr<OutputSink>(new OutputSink(std::move(state)));
}

OutputSink::~OutputSink() { finish(std::chrono::milliseconds(0)); }

void OutputSink::write(std::span<const uint8_t> bytes) {
    State& s = *state_;
    if (!s.fd || bytes.empty()) return;
    bool was_empty = false;
    {
        std::lock_guard lock(s.mutex);
        size_t take = s.accepting ? std::min(bytes.size(), kCapacity - s.size) : 0;
        s.dropped += bytes.size() - take;
        size_t tail = (s.head + s.size) % kCapacity;
        size_t first = std::min(take, kCapacity - tail);
        std::memcpy(s.ring.get() + tail, bytes.data(), first);
        std::memcpy(s.ring.get(), bytes.data() + first, take - first);
        was_empty = s.size == 0 && take > 0;
        s.size += take;
    }
    if (was_empty) s.wake.signal();
}

void OutputSink::finish(std::chrono::milliseconds grace) {
    State& s = *state_;
    if (!s.writer.joinable()) return;  // output off, or finished already
    {
        std::lock_guard lock(s.mutex);
        s.accepting = false;
        s.stopping = true;
        s.deadline = std::chrono::steady_clock::now() + grace;
    }
    s.wake.signal();
    bool exited;
    {
        std::unique_lock lock(s.mutex);
        // The thread only ever waits in poll(), which the deadline ends; the margin covers a write() that
        // blocks anyway (a pipe that another writer filled between our poll and write).
        exited = s.exited_cv.wait_for(lock, grace + std::chrono::milliseconds(100), [&] { return s.exited; });
    }
    uint64_t n;
    {
        std::lock_guard lock(s.mutex);
        n = s.dropped + (exited ? 0 : s.size);
    }
    if (exited)
        s.writer.join();
    else
        s.writer.detach();  // it holds the state; process exit ends it
    if (n > 0)
        spdlog::warn("{} output: {} bytes dropped (the output did not keep up, or failed)", s.what, n);
}

uint64_t OutputSink::dropped() const {
    std::lock_guard lock(state_->mutex);
    return state_->dropped;
}

}  // namespace kite
