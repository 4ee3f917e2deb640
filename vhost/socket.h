// A vhost-user Unix stream connection: sends and receives whole messages with up to 8 fds as SCM_RIGHTS.
// This is the one place where ancillary data is handled: received fds are owned in UniqueFd at once,
// truncated ancillary data (MSG_CTRUNC) is an error, partial transfers and EINTR are retried, and every
// wait has a deadline so a dead or stalled peer cannot hang the caller.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "base/error.h"
#include "base/fd.h"
#include "vhost/protocol.h"

namespace kite::vhost {

using Millis = std::chrono::milliseconds;

// Who may serve a vhost-user socket. Kite hands the peer guest RAM, ring addresses and eventfds, and a
// socket path in a shared directory can be taken over by another local user once the back-end is gone:
// without `uid`, the peer must run as Kite's own user or as root; with it, as exactly that user.
struct PeerRule {
    std::optional<uint32_t> uid;
};

// The decision alone (SO_PEERCRED gives `peer_uid`; `own_uid` is Kite's effective uid). Error code EACCES.
Result<void> check_peer_uid(uint32_t peer_uid, uint32_t own_uid, const PeerRule& rule);

class Connection {
public:
    explicit Connection(UniqueFd fd) : fd_(std::move(fd)) {}

    // Connects to a listening back-end, retrying while the path is missing or refuses, until `timeout`
    // (0: one attempt). Never blocks past the deadline, also when the listener's backlog is full and it
    // does not accept (error code ETIMEDOUT). The peer must pass `rule` (error code EACCES, not retried).
    static Result<Connection> connect(const std::string& path, Millis timeout, const PeerRule& rule = {});

    int fd() const { return fd_.get(); }

    // Sends header + payload in as many writes as needed; the fds travel with the first byte. Fails after
    // `timeout` if the peer does not drain the socket.
    Result<void> send(uint32_t request, uint32_t flags, std::span<const uint8_t> payload,
                      std::span<const int> fds = {}, Millis timeout = Millis(5000));

    // Receives one message. Errors: timeout (code ETIMEDOUT), peer closed (code ECONNRESET), payload larger
    // than kMaxPayload, more than kMaxFds fds, truncated ancillary data. Every fd received is closed on error.
    Result<Message> receive(Millis timeout);

    // True when at least one byte (or end of stream) is waiting, without blocking.
    bool readable_now() const;

private:
    UniqueFd fd_;
};

// A connected pair of stream sockets (close-on-exec), e.g. for the backend channel.
Result<std::pair<UniqueFd, UniqueFd>> socket_pair();

// A listening Unix socket for a back-end. Removes a stale socket file at `path` first and the file again
// when destroyed.
class Listener {
public:
    static Result<Listener> listen(const std::string& path);
    Listener(Listener&& other) noexcept = default;
    Listener& operator=(Listener&&) noexcept = default;
    ~Listener();

    Result<Connection> accept(Millis timeout);
    int fd() const { return fd_.get(); }

private:
    Listener(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
    UniqueFd fd_;
    std::string path_;
};

// Waits until `fd` is readable (or hung up) or `timeout` passes; EINTR is retried with the rest of the time.
// Returns false on timeout.
Result<bool> wait_readable(int fd, Millis timeout);

}  // namespace kite::vhost
