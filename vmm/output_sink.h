// Where a character device's guest output goes: stdout, a file (created/truncated at start), or nowhere.
//
// Guest output must never stop the VM, and stdout may be a pipe nobody reads (issue 12 item 13). So
// write() only copies into a bounded buffer and returns; bytes that do not fit are dropped and counted.
// A writer thread per sink empties the buffer into the fd. Why a thread, not non-blocking writes on the
// event loop: the fd stays as it is (setting O_NONBLOCK on stdout would change the file description the
// shell and every other process on that terminal or pipe share), the serial port writes from vCPU threads
// that should not post to the loop per byte, and a stalled output then costs nothing but that thread.
// The thread polls for POLLOUT and then writes at most PIPE_BUF bytes, which a writable pipe takes
// without blocking; it also wakes for finish(), which stops it after a short grace whatever the fd does.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "base/error.h"
#include "base/fd.h"
#include "vmm/config/config.h"

namespace kite {

class OutputSink {
public:
    // Bytes buffered per sink while the output does not keep up; more is dropped.
    static constexpr size_t kCapacity = 1 << 20;

    static Result<std::shared_ptr<OutputSink>> open(const OutputConfig& config, std::string_view what);
    ~OutputSink();  // finish(0)
    OutputSink(const OutputSink&) = delete;
    OutputSink& operator=(const OutputSink&) = delete;

    // Any thread; never blocks on the fd. Bytes that do not fit in the buffer (or arrive after finish(),
    // or after the fd failed) are dropped and counted.
    void write(std::span<const uint8_t> bytes);
    // Stops the writer thread: lets it flush for up to `grace`, then drops what is left, and logs how
    // many bytes were dropped over the sink's life, if any. Returns within about `grace`. Idempotent.
    void finish(std::chrono::milliseconds grace);
    uint64_t dropped() const;

    struct State;

private:
    OutputSink(std::shared_ptr<State> state) : state_(std::move(state)) {}
    std::shared_ptr<State> state_;  // shared with the writer thread, which may outlive a stuck finish()
};

}  // namespace kite
