// The control API: JSON over a Unix stream socket, one request object per line, one response per line.
//   {"command":"status"}                   -> {"ok":true,"state":"running"|"paused","vcpus":N,"memory":bytes}
//   {"command":"pause"} / {"command":"resume"}
//   {"command":"snapshot","path":"FILE","via":"direct"|"mirror","then":"resume"|"pause"|"stop"}
//        -> writes a snapshot (vCPUs paused while state and memory are copied, not while the file is
//           written); "via" defaults to direct, "then" to the
//           state the VM was in. Reply: {"ok":true,"pause_ms":..,"capture_ms":..,"write_ms":..,
//           "memory_bytes":..,"file_bytes":..}
//   {"command":"shutdown"}                 -> stops the VM; Kite exits 0
// Errors: {"ok":false,"error":"...","kind":"invalid"|"system"|"unsupported"} (base/error.h ErrorKind: a
// refused request, a failed system call, a host that lacks a feature). A malformed request never affects the VM.
#pragma once

#include <sys/types.h>

#include <asio.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "base/error.h"

namespace kite {

class Vm;

enum class SnapshotVia { Direct, Mirror };
enum class AfterSnapshot { Previous, Resume, Pause, Stop };

struct SnapshotRequest {
    std::string path;
    SnapshotVia via = SnapshotVia::Direct;
    AfterSnapshot then = AfterSnapshot::Previous;
};

// What a snapshot cost, for the reply (and scripts/bench-snapshot.sh).
struct SnapshotReport {
    double pause_ms = 0;    // vCPUs parked by this request (until resumed; to the reply if left paused)
    double capture_ms = 0;  // reading state and memory (direct copy or mirror export)
    double write_ms = 0;    // encoding and writing the file
    uint64_t memory_bytes = 0;  // guest RAM covered
    uint64_t file_bytes = 0;
};

// Parses the snapshot request's fields (path, via, then); errors name the bad field.
Result<SnapshotRequest> parse_snapshot_request(const std::string& line);

// What the server does for each command; the VMM supplies these (the snapshot handler may be absent).
struct ControlHandlers {
    std::function<Result<void>()> pause;
    std::function<Result<void>()> resume;
    std::function<Result<SnapshotReport>(const SnapshotRequest&)> snapshot;
    std::function<void()> shutdown;
    std::function<std::string()> state;  // "running" or "paused"
    unsigned vcpus = 0;
    uint64_t memory = 0;
};

// What one local user may hold of the server: a client that opens connections and sends nothing must
// neither exhaust Kite's file descriptors nor keep others out for ever.
struct ControlLimits {
    size_t max_clients = 16;  // connections beyond these get an error line and are closed
    std::chrono::milliseconds idle_timeout = std::chrono::seconds(60);  // waiting for a request, or for
                                                                         // a reply to be taken
};

class ControlServer : public std::enable_shared_from_this<ControlServer> {
public:
    // Listens on `path`, a socket only its owner can use (mode 0600). A stale socket there is replaced;
    // anything else at `path` is refused, never removed.
    static Result<std::shared_ptr<ControlServer>> listen(asio::io_context& io, const std::string& path,
                                                         ControlHandlers handlers, ControlLimits limits = {});
    ~ControlServer();
    // Pure: turns one request line into one response line. Public for unit tests and the fuzz target.
    std::string handle_line(const std::string& line);
    // Runs `fn` once the reply being prepared has been written (or the client has gone): a handler that
    // stops the VM uses it so the client still gets its answer.
    void after_reply(std::function<void()> fn) { after_reply_ = std::move(fn); }

private:
    struct Client;

    ControlServer(asio::io_context& io, std::string path, ControlHandlers handlers, ControlLimits limits);
    Result<void> bind_owner_only();
    void accept();
    void accept_failed(std::error_code ec);
    void admit(asio::local::stream_protocol::socket socket);
    void serve(std::shared_ptr<Client> client);
    void watch_idle(const std::shared_ptr<Client>& client);

    asio::local::stream_protocol::acceptor acceptor_;
    asio::steady_timer accept_retry_;
    std::string path_;
    ControlHandlers handlers_;
    ControlLimits limits_;
    size_t clients_ = 0;
    // The socket file this server made (device, inode): only that is removed when it goes.
    std::optional<std::pair<dev_t, ino_t>> bound_;
    std::function<void()> after_reply_;
};

}  // namespace kite
