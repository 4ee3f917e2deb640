// The control API: JSON over a Unix stream socket, one request object per line, one response per line.
//   {"command":"status"}                   -> {"ok":true,"state":"running"|"paused","vcpus":N,"memory":bytes}
//   {"command":"pause"} / {"command":"resume"}
//   {"command":"snapshot","path":"FILE"}   -> writes a snapshot (the VM is paused while it is taken)
//   {"command":"shutdown"}                 -> stops the VM; Kite exits 0
// Errors: {"ok":false,"error":"..."}. A malformed request never affects the VM.
#pragma once

#include <asio.hpp>
#include <functional>
#include <memory>
#include <string>

#include "memory/error.h"

namespace kite {

class Vm;

// What the server does for each command; the VMM supplies these (the snapshot handler may be absent).
struct ControlHandlers {
    std::function<Result<void>()> pause;
    std::function<Result<void>()> resume;
    std::function<Result<void>(const std::string& path)> snapshot;
    std::function<void()> shutdown;
    std::function<std::string()> state;  // "running" or "paused"
    unsigned vcpus = 0;
    uint64_t memory = 0;
};

class ControlServer : public std::enable_shared_from_this<ControlServer> {
public:
    static Result<std::shared_ptr<ControlServer>> listen(asio::io_context& io, const std::string& path,
                                                         ControlHandlers handlers);
    ~ControlServer();
    // Pure: turns one request line into one response line. Public for unit tests and the fuzz target.
    std::string handle_line(const std::string& line);

private:
    ControlServer(asio::io_context& io, std::string path, ControlHandlers handlers);
    void accept();
    void serve(std::shared_ptr<asio::local::stream_protocol::socket> socket);

    asio::local::stream_protocol::acceptor acceptor_;
    std::string path_;
    ControlHandlers handlers_;
};

}  // namespace kite
