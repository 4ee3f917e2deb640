#include "vmm/control/server.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "base/log_limit.h"

namespace kite {

namespace {

using json = nlohmann::json;
constexpr size_t kMaxRequestLine = 64 * 1024;
// After running out of descriptors (or memory) accept() fails at once again: wait a little for some to
// be freed instead of spinning, and never stop accepting for good.
constexpr auto kAcceptBackOff = std::chrono::milliseconds(100);

std::string reply(const Result<void>& r) {
    if (r) return json{{"ok", true}}.dump();
    return json{{"ok", false}, {"error", r.error().message}, {"kind", kind_name(r.error().kind)}}.dump();
}

// A request the server itself refuses (bad JSON, unknown command): always of kind "invalid".
std::string error_reply(const std::string& message) {
    return json{{"ok", false}, {"error", message}, {"kind", kind_name(ErrorKind::Invalid)}}.dump();
}

}  // namespace

Result<SnapshotRequest> parse_snapshot_request(const std::string& line) {
    json request = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (request.is_discarded() || !request.is_object()) return fail("request is not a JSON object");
    SnapshotRequest out;
    auto path = request.find("path");
    if (path == request.end() || !path->is_string() || path->get<std::string>().empty())
        return fail("snapshot needs a \"path\" string");
    out.path = *path;
    if (out.path.find('\0') != std::string::npos) return fail("snapshot \"path\" contains a NUL byte");
    if (auto via = request.find("via"); via != request.end()) {
        if (!via->is_string()) return fail("snapshot \"via\" must be \"direct\" or \"mirror\"");
        const std::string v = *via;
        if (v == "direct")
            out.via = SnapshotVia::Direct;
        else if (v == "mirror")
            out.via = SnapshotVia::Mirror;
        else
            return fail("snapshot \"via\" must be \"direct\" or \"mirror\", not \"" + v + "\"");
    }
    if (auto then = request.find("then"); then != request.end()) {
        if (!then->is_string()) return fail("snapshot \"then\" must be \"resume\", \"pause\" or \"stop\"");
        const std::string t = *then;
        if (t == "resume")
            out.then = AfterSnapshot::Resume;
        else if (t == "pause")
            out.then = AfterSnapshot::Pause;
        else if (t == "stop")
            out.then = AfterSnapshot::Stop;
        else
            return fail("snapshot \"then\" must be \"resume\", \"pause\" or \"stop\", not \"" + t + "\"");
    }
    return out;
}

// One connected client: its socket, the request being read, and the timer that drops it when idle.
// It holds one of the server's client places until it is destroyed.
struct ControlServer::Client {
    Client(std::weak_ptr<ControlServer> server, asio::local::stream_protocol::socket s)
        : server(std::move(server)), socket(std::move(s)), buffer(kMaxRequestLine), idle(socket.get_executor()) {}
    ~Client() {
        if (auto s = server.lock()) --s->clients_;
    }
    std::weak_ptr<ControlServer> server;
    asio::local::stream_protocol::socket socket;
    asio::streambuf buffer;
    asio::steady_timer idle;
};

ControlServer::ControlServer(asio::io_context& io, std::string path, ControlHandlers handlers, ControlLimits limits)
    : acceptor_(io), accept_retry_(io), path_(std::move(path)), handlers_(std::move(handlers)), limits_(limits) {}

ControlServer::~ControlServer() {
    // Only the socket this server bound: whatever another process put at the path since stays.
    struct stat st {};
    if (bound_ && ::lstat(path_.c_str(), &st) == 0 && std::pair(st.st_dev, st.st_ino) == *bound_)
        ::unlink(path_.c_str());
}

Result<void> ControlServer::bind_owner_only() {
    const std::string what = "control socket " + path_;
    struct stat st {};
    if (::lstat(path_.c_str(), &st) == 0) {
        // A socket is what a previous Kite left; anything else is someone's file, not ours to remove.
        if (!S_ISSOCK(st.st_mode)) return fail(what + ": the path exists and is not a socket; not removing it");
        if (::unlink(path_.c_str()) != 0) return std::unexpected(errno_error(what + ": cannot remove the stale socket"));
    }
    std::error_code ec;
    asio::local::stream_protocol::endpoint ep(path_);
    acceptor_.open(ep.protocol(), ec);
    if (ec) return fail(what + ": " + ec.message());
    // bind() creates the file with the socket's mode less the umask: set 0600 before, so the file never
    // exists with more (group members could drive the VM), whatever the umask and without changing it.
    if (::fchmod(acceptor_.native_handle(), 0600) != 0) return std::unexpected(errno_error(what + ": fchmod"));
    acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return fail(what + ": " + ec.message());
    if (::lstat(path_.c_str(), &st) == 0) bound_ = std::pair(st.st_dev, st.st_ino);
    return {};
}

Result<std::shared_ptr<ControlServer>> ControlServer::listen(asio::io_context& io, const std::string& path,
                                                             ControlHandlers handlers, ControlLimits limits) {
    auto server = std::shared_ptr<ControlServer>(new ControlServer(io, path, std::move(handlers), limits));
    if (auto ok = server->bind_owner_only(); !ok) return std::unexpected(ok.error());
    server->accept();
    return server;
}

void ControlServer::accept() {
    acceptor_.async_accept([self = weak_from_this()](std::error_code ec, asio::local::stream_protocol::socket s) {
        auto server = self.lock();
        if (!server || ec == asio::error::operation_aborted) return;
        if (ec) return server->accept_failed(ec);
        server->admit(std::move(s));
        server->accept();
    });
}

void ControlServer::accept_failed(std::error_code ec) {
    static LogLimit log;
    log.warn("control socket {}: accept failed: {}", path_, ec.message());
    const bool exhausted = ec.value() == EMFILE || ec.value() == ENFILE || ec.value() == ENOBUFS || ec.value() == ENOMEM;
    if (!exhausted) return accept();  // that connection's own trouble: go on with the next
    accept_retry_.expires_after(kAcceptBackOff);
    accept_retry_.async_wait([self = weak_from_this()](std::error_code wec) {
        auto server = self.lock();
        if (server && !wec) server->accept();
    });
}

void ControlServer::admit(asio::local::stream_protocol::socket socket) {
    if (clients_ >= limits_.max_clients) {
        // One short line into an empty socket buffer: it does not block; the socket closes when it is sent.
        auto s = std::make_shared<asio::local::stream_protocol::socket>(std::move(socket));
        auto out = std::make_shared<std::string>(
            json{{"ok", false},
                 {"error", "too many control clients (" + std::to_string(limits_.max_clients) + "); try again later"},
                 {"kind", kind_name(ErrorKind::System)}}
                .dump() +
            "\n");
        asio::async_write(*s, asio::buffer(*out), [s, out](std::error_code, size_t) {});
        return;
    }
    ++clients_;
    serve(std::make_shared<Client>(weak_from_this(), std::move(socket)));
}

// (Re)starts the client's idle clock: when it runs out before the clock is started again, the socket
// is closed, which ends the read or write it waits on, and with it the client.
void ControlServer::watch_idle(const std::shared_ptr<Client>& client) {
    client->idle.expires_after(limits_.idle_timeout);
    client->idle.async_wait([weak = std::weak_ptr<Client>(client)](std::error_code ec) {
        auto c = weak.lock();
        if (ec || !c || c->idle.expiry() > std::chrono::steady_clock::now()) return;  // restarted since
        std::error_code ignored;
        c->socket.close(ignored);
    });
}

void ControlServer::serve(std::shared_ptr<Client> client) {
    watch_idle(client);
    asio::async_read_until(client->socket, client->buffer, '\n', [self = weak_from_this(), client](std::error_code ec, size_t n) {
        auto server = self.lock();
        if (!server || ec) return;  // disconnect, idle, or a line longer than kMaxRequestLine: drop the client
        asio::streambuf& buffer = client->buffer;
        std::string line(asio::buffers_begin(buffer.data()), asio::buffers_begin(buffer.data()) + n);
        buffer.consume(n);
        auto out = std::make_shared<std::string>(server->handle_line(line) + "\n");
        server->watch_idle(client);  // the handler may have taken long: the client now has to take the reply
        asio::async_write(client->socket, asio::buffer(*out), [self, client, out](std::error_code wec, size_t) {
            auto s = self.lock();
            if (!s) return;
            if (auto then = std::exchange(s->after_reply_, {})) then();
            if (!wec) s->serve(client);
        });
    });
}

std::string ControlServer::handle_line(const std::string& line) {
    json request = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (request.is_discarded() || !request.is_object()) return error_reply("request is not a JSON object");
    auto cmd = request.find("command");
    if (cmd == request.end() || !cmd->is_string()) return error_reply("request has no \"command\" string");
    const std::string command = *cmd;
    if (command == "status")
        return json{{"ok", true}, {"state", handlers_.state()}, {"vcpus", handlers_.vcpus}, {"memory", handlers_.memory}}
            .dump();
    if (command == "pause") return reply(handlers_.pause());
    if (command == "resume") return reply(handlers_.resume());
    if (command == "shutdown") {
        handlers_.shutdown();
        return reply({});
    }
    if (command == "snapshot") {
        auto parsed = parse_snapshot_request(line);
        if (!parsed) return error_reply(parsed.error().message);
        if (!handlers_.snapshot) return error_reply("snapshots are not available for this VM");
        auto report = handlers_.snapshot(*parsed);
        if (!report) return error_reply(report.error().message);
        return json{{"ok", true},
                    {"pause_ms", report->pause_ms},
                    {"capture_ms", report->capture_ms},
                    {"write_ms", report->write_ms},
                    {"memory_bytes", report->memory_bytes},
                    {"file_bytes", report->file_bytes}}
            .dump();
    }
    return error_reply("unknown command \"" + command + "\"");
}

}  // namespace kite
