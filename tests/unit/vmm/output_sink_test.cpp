// Issue 12 item 13: guest output into a stdout nobody reads must never block the writer (a vCPU or the
// VMM thread); what does not fit is dropped and counted, and stopping the sink is prompt.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <string>
#include <thread>
#include <vector>

#include "vmm/output_sink.h"

using namespace kite;
using namespace std::chrono_literals;

namespace {

struct Pipe {
    int read = -1;
    int write = -1;
    Pipe() {
        int fds[2];
        REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
        read = fds[0];
        write = fds[1];
        ::fcntl(write, F_SETPIPE_SZ, 4096);  // fills after one page
    }
    ~Pipe() {
        if (read >= 0) ::close(read);
        if (write >= 0) ::close(write);
    }
};

// The sink as Kite opens it for `serial: {file: ...}`, on the pipe's write end.
std::shared_ptr<OutputSink> sink_on(const Pipe& pipe) {
    OutputConfig config{OutputConfig::Mode::File, "/proc/self/fd/" + std::to_string(pipe.write)};
    auto sink = OutputSink::open(config, "test");
    REQUIRE(sink);
    return *sink;
}

// Runs `fn` on a thread; true if it returned within `limit`. On false the pipe's read end is closed so a
// blocked write ends (SIGPIPE ignored) and the thread can be joined.
template <class Fn>
bool returns_within(std::chrono::milliseconds limit, Pipe& pipe, Fn fn) {
    std::signal(SIGPIPE, SIG_IGN);
    std::atomic<bool> done = false;
    std::thread t([&] {
        fn();
        done = true;
    });
    auto until = std::chrono::steady_clock::now() + limit;
    while (!done && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
    bool ok = done;
    if (!ok) {
        ::close(pipe.read);
        pipe.read = -1;
    }
    t.join();
    return ok;
}

}  // namespace

TEST_CASE("output into a pipe nobody reads returns at once, one byte at a time as the serial port writes") {
    Pipe pipe;
    auto sink = sink_on(pipe);
    const size_t total = 4 * OutputSink::kCapacity;
    CHECK(returns_within(2000ms, pipe, [&] {
        uint8_t byte = 'x';
        for (size_t i = 0; i < total; ++i) sink->write(std::span(&byte, 1));
    }));
    // Whatever is not in the buffer or the pipe was dropped, and counted.
    CHECK(sink->dropped() >= total - OutputSink::kCapacity - 64 * 1024);
}

TEST_CASE("output into a pipe nobody reads: large pieces (virtio-console) return at once too") {
    Pipe pipe;
    auto sink = sink_on(pipe);
    std::vector<uint8_t> piece(4096, 'y');
    CHECK(returns_within(2000ms, pipe, [&] {
        for (int i = 0; i < 1024; ++i) sink->write(piece);
    }));
    CHECK(sink->dropped() > 0);
}

TEST_CASE("finish() on a stuck output gives up after its grace and reports the bytes it dropped") {
    Pipe pipe;
    auto sink = sink_on(pipe);
    std::vector<uint8_t> piece(64 * 1024, 'z');
    for (int i = 0; i < 4; ++i) sink->write(piece);
    auto start = std::chrono::steady_clock::now();
    CHECK(returns_within(2000ms, pipe, [&] { sink->finish(100ms); }));
    CHECK(std::chrono::steady_clock::now() - start < 1s);
    // Everything but what the pipe took is lost.
    CHECK(sink->dropped() >= 4 * piece.size() - 64 * 1024);
    sink->write(piece);  // after finish: dropped, not queued
    CHECK(sink->dropped() >= 5 * piece.size() - 64 * 1024);
}

TEST_CASE("output that is read arrives whole and in order") {
    Pipe pipe;
    auto sink = sink_on(pipe);
    std::string sent;
    for (int i = 0; i < 2000; ++i) sent += "line " + std::to_string(i) + "\n";  // more than the pipe holds
    std::string got;
    std::thread reader([&] {
        char buf[4096];
        ssize_t n;
        while ((n = ::read(pipe.read, buf, sizeof buf)) > 0) got.append(buf, size_t(n));
    });
    for (char c : sent) sink->write(std::span(reinterpret_cast<const uint8_t*>(&c), 1));
    sink->finish(2000ms);
    sink.reset();
    ::close(pipe.write);
    pipe.write = -1;
    reader.join();
    CHECK(got == sent);
}
