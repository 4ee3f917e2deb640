#include "vhost/socket.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include <fmt/format.h>

namespace kite::vhost {

namespace {

using Clock = std::chrono::steady_clock;

Millis remaining(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
    return left.count() > 0 ? left : Millis(0);
}

// Polls for `events` until the deadline; returns false on timeout.
Result<bool> wait_for(int fd, short events, Clock::time_point deadline) {
    for (;;) {
        pollfd pfd{fd, events, 0};
        int n = ::poll(&pfd, 1, static_cast<int>(remaining(deadline).count()));
        if (n > 0) return true;
        if (n == 0) return false;
        if (errno != EINTR) return std::unexpected(errno_error("vhost-user: poll"));
    }
}

// Takes every fd of the SCM_RIGHTS messages in `msg` into `fds` (so none can leak), then reports
// truncation.
Result<void> take_fds(msghdr& msg, std::vector<UniqueFd>& fds) {
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            fds.emplace_back(fd);
        }
    }
    if (msg.msg_flags & MSG_CTRUNC) return fail("vhost-user: ancillary data truncated (more than 8 fds sent)");
    return {};
}

Result<void> recv_exact(int fd, uint8_t* buf, size_t len, std::vector<UniqueFd>& fds, Clock::time_point deadline) {
    size_t got = 0;
    while (got < len) {
        auto ready = wait_for(fd, POLLIN, deadline);
        if (!ready) return std::unexpected(ready.error());
        if (!*ready) return std::unexpected(Error{"vhost-user: timed out waiting for the peer", ETIMEDOUT, ErrorKind::System});
        iovec iov{buf + got, len - got};
        alignas(cmsghdr) char control[CMSG_SPACE(kMaxFds * sizeof(int))];
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof(control);
        ssize_t n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            return std::unexpected(errno_error("vhost-user: recvmsg"));
        }
        if (auto ok = take_fds(msg, fds); !ok) return ok;
        if (n == 0) return std::unexpected(Error{"vhost-user: peer closed the connection", ECONNRESET, ErrorKind::System});
        got += static_cast<size_t>(n);
    }
    if (fds.size() > kMaxFds) return fail(fmt::format("vhost-user: message carries {} fds, at most {}", fds.size(), kMaxFds));
    return {};
}

Result<sockaddr_un> unix_address(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(addr.sun_path))
        return fail(fmt::format("vhost-user: socket path '{}' is empty or longer than {} bytes", path,
                                sizeof(addr.sun_path) - 1));
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    return addr;
}

}  // namespace

Result<bool> wait_readable(int fd, Millis timeout) { return wait_for(fd, POLLIN, Clock::now() + timeout); }

Result<void> check_peer_uid(uint32_t peer_uid, uint32_t own_uid, const PeerRule& rule) {
    if (rule.uid ? peer_uid == *rule.uid : (peer_uid == own_uid || peer_uid == 0)) return {};
    std::string allowed = rule.uid ? fmt::format("uid {} (peer-uid)", *rule.uid) : fmt::format("uid {} or root", own_uid);
    return std::unexpected(Error{fmt::format("the back-end runs as uid {}, only {} may serve this socket", peer_uid,
                                             allowed),
                                 EACCES, ErrorKind::Invalid});
}

namespace {

Result<void> check_peer(int fd, const std::string& path, const PeerRule& rule) {
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
        return std::unexpected(errno_error(fmt::format("vhost-user: SO_PEERCRED of '{}'", path)));
    if (auto ok = check_peer_uid(cred.uid, ::geteuid(), rule); !ok)
        return std::unexpected(with_context(fmt::format("vhost-user: '{}'", path), ok.error()));
    return {};
}

}  // namespace

Result<Connection> Connection::connect(const std::string& path, Millis timeout, const PeerRule& rule) {
    auto addr = unix_address(path);
    if (!addr) return std::unexpected(addr.error());
    auto deadline = Clock::now() + timeout;
    for (;;) {
        // Non-blocking: a blocking connect to a listener whose backlog is full waits until it accepts,
        // which a hostile or hung one never does (EAGAIN here instead, retried until the deadline).
        UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
        if (!fd) return std::unexpected(errno_error("vhost-user: socket"));
        int err = 0;
        if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) != 0) err = errno;
        if (err == EINPROGRESS) {  // not done by AF_UNIX today, but then the same deadline applies
            auto ready = wait_for(fd.get(), POLLOUT, deadline);
            if (!ready) return std::unexpected(ready.error());
            socklen_t len = sizeof(err);
            err = !*ready ? EAGAIN : ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0 ? errno : err;
        }
        if (err == 0) {
            if (auto peer = check_peer(fd.get(), path, rule); !peer) return std::unexpected(peer.error());
            // Every wait on the connection has its own deadline (MSG_DONTWAIT and poll): back to blocking
            // mode, as before, for whoever else uses the fd.
            int flags = ::fcntl(fd.get(), F_GETFL);
            if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0)
                return std::unexpected(errno_error("vhost-user: fcntl"));
            return Connection(std::move(fd));
        }
        bool retry = err == ENOENT || err == ECONNREFUSED || err == EINTR || err == EAGAIN;
        if (!retry || Clock::now() >= deadline) {
            if (err == EAGAIN)
                return std::unexpected(Error{fmt::format("vhost-user: connect to '{}': the listener does not accept "
                                                         "connections (its backlog is full)", path),
                                             ETIMEDOUT, ErrorKind::System});
            return std::unexpected(errno_error(fmt::format("vhost-user: connect to '{}'", path), err));
        }
        std::this_thread::sleep_for(std::min(Millis(20), remaining(deadline)));
    }
}

Result<void> Connection::send(uint32_t request, uint32_t flags, std::span<const uint8_t> payload,
                              std::span<const int> fds, Millis timeout) {
    if (fds.size() > kMaxFds) return fail(fmt::format("vhost-user: cannot send {} fds, at most {}", fds.size(), kMaxFds));
    std::vector<uint8_t> bytes = encode_message(request, flags, payload);
    auto deadline = Clock::now() + timeout;
    size_t sent = 0;
    while (sent < bytes.size()) {
        iovec iov{bytes.data() + sent, bytes.size() - sent};
        alignas(cmsghdr) char control[CMSG_SPACE(kMaxFds * sizeof(int))] = {};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        if (sent == 0 && !fds.empty()) {
            msg.msg_control = control;
            msg.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
            cmsghdr* c = CMSG_FIRSTHDR(&msg);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
            std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
        }
        ssize_t n = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                auto ready = wait_for(fd_.get(), POLLOUT, deadline);
                if (!ready) return std::unexpected(ready.error());
                if (!*ready) return std::unexpected(Error{"vhost-user: timed out sending to the peer", ETIMEDOUT, ErrorKind::System});
                continue;
            }
            return std::unexpected(errno_error("vhost-user: sendmsg"));
        }
        sent += static_cast<size_t>(n);
    }
    return {};
}

Result<Message> Connection::receive(Millis timeout) {
    auto deadline = Clock::now() + timeout;
    std::vector<UniqueFd> fds;
    std::vector<uint8_t> bytes(sizeof(Header));
    if (auto ok = recv_exact(fd_.get(), bytes.data(), sizeof(Header), fds, deadline); !ok) return std::unexpected(ok.error());
    Header header;
    std::memcpy(&header, bytes.data(), sizeof(header));
    // guest-controlled (peer-controlled): the size decides how much more we read.
    if (header.size > kMaxPayload)
        return fail(fmt::format("vhost-user: {} announces payload size {}, maximum is {}", header.request, header.size,
                                kMaxPayload));
    bytes.resize(sizeof(Header) + header.size);
    if (auto ok = recv_exact(fd_.get(), bytes.data() + sizeof(Header), header.size, fds, deadline); !ok)
        return std::unexpected(ok.error());
    return parse_message(bytes, std::move(fds));
}

bool Connection::readable_now() const {
    pollfd pfd{fd_.get(), POLLIN, 0};
    return ::poll(&pfd, 1, 0) > 0;
}

Result<std::pair<UniqueFd, UniqueFd>> socket_pair() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return std::unexpected(errno_error("vhost-user: socketpair"));
    return std::pair{UniqueFd(sv[0]), UniqueFd(sv[1])};
}

Result<Listener> Listener::listen(const std::string& path) {
    auto addr = unix_address(path);
    if (!addr) return std::unexpected(addr.error());
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return std::unexpected(errno_error("vhost-user: socket"));
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) != 0)
        return std::unexpected(errno_error(fmt::format("vhost-user: bind '{}'", path)));
    if (::listen(fd.get(), 1) != 0) return std::unexpected(errno_error("vhost-user: listen"));
    return Listener(std::move(fd), path);
}

Listener::~Listener() {
    if (fd_) ::unlink(path_.c_str());
}

Result<Connection> Listener::accept(Millis timeout) {
    auto ready = wait_for(fd_.get(), POLLIN, Clock::now() + timeout);
    if (!ready) return std::unexpected(ready.error());
    if (!*ready) return std::unexpected(Error{"vhost-user: no front-end connected in time", ETIMEDOUT, ErrorKind::System});
    UniqueFd conn(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn) return std::unexpected(errno_error("vhost-user: accept"));
    return Connection(std::move(conn));
}

}  // namespace kite::vhost
