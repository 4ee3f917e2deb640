// The front-end's side of the backend channel (SET_BACKEND_REQ_FD): requests the back-end sends to the
// VMM. Served on the VMM thread's asio loop, and also by Frontend while it waits for a reply on the main
// socket (deadlock rule: a back-end blocked on a SHMEM_MAP reply must never wait for us while we wait for it).
//
// CONFIG_CHANGE_MSG calls a callback (the device raises a config interrupt). SHMEM_MAP / SHMEM_UNMAP: the
// wire rules (size, flags, fds) are checked here, the range rules of docs/VHOST_USER.md by the ShmWindow
// behind the ShmRegionTable they are applied to, each rule in one place. A refused or
// unsupported request gets a non-zero u64 reply when REPLY_ACK is negotiated and NEED_REPLY is set, and
// the channel stays up. A broken stream (peer gone, truncated message, bad size field) closes the
// channel and drops every mapping.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <variant>

#include "base/error.h"
#include "base/fd.h"
#include "vhost/protocol.h"
#include "vhost/shm_regions.h"
#include "vhost/socket.h"
#include "vhost/trace.h"

namespace asio {
class io_context;
}

namespace kite::vhost {

struct ConfigChangeRequest {};

struct ShmemMapRequest {
    uint8_t shmid = 0;
    uint64_t fd_offset = 0;
    uint64_t shm_offset = 0;
    uint64_t len = 0;
    bool writable = false;
    UniqueFd fd;
};

struct ShmemUnmapRequest {
    uint8_t shmid = 0;
    uint64_t shm_offset = 0;
    uint64_t len = 0;
};

using BackendRequest = std::variant<ConfigChangeRequest, ShmemMapRequest, ShmemUnmapRequest>;

// Pure parse of one received backend-channel message into a request, with the wire rules: header and size
// (validate_backend_request), SHMEM_MAP with exactly one fd, SHMEM_UNMAP with none, no unknown flag bits.
// Unsupported ids are errors. The fds are consumed (closed on error). Offsets and lengths are not looked
// at here: ShmWindow checks them (length, alignment, overflow, bounds) when the request is applied.
Result<BackendRequest> parse_backend_request(Message msg);

class BackendChannel {
public:
    struct Options {
        uint64_t protocol_features = 0;     // as negotiated; REPLY_ACK and SHMEM matter here
        ShmRegionTable* shm = nullptr;      // borrowed, must outlive the channel; nullptr = no shared memory
        std::function<void()> on_config_change;
        std::function<void()> on_closed;    // the back-end hung up or broke the stream
        Tracer tracer;
        Millis message_timeout = Millis(1000);  // for the rest of a message once its first byte arrived
    };

    BackendChannel(UniqueFd fd, Options options);
    ~BackendChannel();
    BackendChannel(const BackendChannel&) = delete;
    BackendChannel& operator=(const BackendChannel&) = delete;

    // Serves requests from `io` (the VMM thread's loop) whenever the socket is readable. `io` must outlive
    // the channel.
    void start(asio::io_context& io);
    // Serves every request that is already waiting, without blocking for new ones. False once closed.
    bool serve_pending();

    bool closed() const { return closed_; }
    int fd() const { return conn_.fd(); }
    uint64_t served() const { return served_; }
    uint64_t refused() const { return refused_; }

private:
    void arm();
    // Receives and answers one message; closes the channel on a stream error.
    void serve_one();
    Result<void> apply(BackendRequest& request);
    void close(std::string_view why);

    Connection conn_;
    Options options_;
    bool closed_ = false;
    uint64_t served_ = 0;
    uint64_t refused_ = 0;
    struct Watcher;
    std::unique_ptr<Watcher> watcher_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace kite::vhost
