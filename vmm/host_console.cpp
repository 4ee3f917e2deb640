#include "vmm/host_console.h"

#include <sys/ioctl.h>
#include <unistd.h>

namespace kite {

namespace {
constexpr uint8_t kCtrlA = 0x01;
}

HostConsole::HostConsole(asio::io_context& io, InputSink sink, std::function<void()> on_quit)
    : in_(io, ::dup(STDIN_FILENO)), sink_(std::move(sink)), on_quit_(std::move(on_quit)) {
    termios t;
    if (::isatty(STDIN_FILENO) && ::tcgetattr(STDIN_FILENO, &t) == 0) {
        saved_ = t;
        ::cfmakeraw(&t);
        t.c_oflag |= OPOST | ONLCR;  // keep host-side newline translation for our own log lines
        ::tcsetattr(STDIN_FILENO, TCSANOW, &t);
    }
}

HostConsole::~HostConsole() {
    if (saved_) ::tcsetattr(STDIN_FILENO, TCSANOW, &*saved_);
}

std::span<const unsigned long> HostConsole::ioctl_requests() {
    static constexpr unsigned long kRequests[] = {TCGETS, TCSETS};
    return kRequests;
}

void HostConsole::start() { read_more(); }

void HostConsole::read_more() {
    if (reading_) return;
    reading_ = true;
    in_.async_read_some(asio::buffer(buf_), [this](std::error_code ec, size_t n) {
        reading_ = false;
        if (ec) return;  // EOF or error: the guest simply gets no more input
        forward({buf_.data(), n});
        if (flush_pending()) read_more();
    });
}

void HostConsole::input_space_available() {
    if (flush_pending()) read_more();
}

bool HostConsole::flush_pending() {
    if (pending_.empty()) return true;
    size_t taken = sink_(pending_);
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(taken));
    return pending_.empty();
}

void HostConsole::forward(std::span<const uint8_t> bytes) {
    if (!saved_) {  // not a terminal (a pipe, /dev/null): no escape handling
        pending_.insert(pending_.end(), bytes.begin(), bytes.end());
        return;
    }
    auto& out = pending_;
    for (uint8_t c : bytes) {
        if (escape_pending_) {
            escape_pending_ = false;
            if (c == 'x' || c == 'X') {
                on_quit_();
                pending_.clear();
                return;
            }
            if (c != kCtrlA) out.push_back(kCtrlA);  // Ctrl-A Ctrl-A sends one Ctrl-A
            out.push_back(c);
        } else if (c == kCtrlA) {
            escape_pending_ = true;
        } else {
            out.push_back(c);
        }
    }
}

}  // namespace kite
