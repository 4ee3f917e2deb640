// The terminal side of the guest console: stdin in raw mode (restored on exit) forwarded to the guest's
// serial port or virtio-console, with one escape: Ctrl-A then x stops the VM (as in QEMU).
#pragma once

#include <termios.h>

#include <asio.hpp>
#include <array>
#include <functional>
#include <optional>
#include <span>
#include <vector>

namespace kite {

class HostConsole {
public:
    // Offers bytes to the guest device; returns how many it accepted (its FIFO may be full).
    using InputSink = std::function<size_t(std::span<const uint8_t>)>;
    HostConsole(asio::io_context& io, InputSink sink, std::function<void()> on_quit);
    ~HostConsole();
    HostConsole(const HostConsole&) = delete;
    HostConsole& operator=(const HostConsole&) = delete;

    // The terminal ioctls it sends (isatty and tcgetattr: TCGETS; tcsetattr TCSANOW: TCSETS), which the
    // seccomp filter allows; TIOCSTI (typing into the terminal Kite was started from) is not among them.
    static std::span<const unsigned long> ioctl_requests();

    void start();
    // The guest drained its input FIFO: deliver what is pending and read stdin again. VMM thread only.
    void input_space_available();

private:
    void read_more();
    void forward(std::span<const uint8_t> bytes);
    // Offers pending_ to the sink; true when everything was delivered.
    bool flush_pending();

    asio::posix::stream_descriptor in_;
    InputSink sink_;
    std::function<void()> on_quit_;
    std::optional<termios> saved_;  // terminal settings to restore; empty when stdin is not a tty
    std::array<uint8_t, 256> buf_{};
    bool escape_pending_ = false;
    std::vector<uint8_t> pending_;  // input the guest has not accepted yet; stdin is not read meanwhile
    bool reading_ = false;
};

}  // namespace kite
