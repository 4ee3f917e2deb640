#include "vmm/control/server.h"

#include <unistd.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace kite {

namespace {

using json = nlohmann::json;
constexpr size_t kMaxRequestLine = 64 * 1024;

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

ControlServer::ControlServer(asio::io_context& io, std::string path, ControlHandlers handlers)
    : acceptor_(io), path_(std::move(path)), handlers_(std::move(handlers)) {}

ControlServer::~ControlServer() { ::unlink(path_.c_str()); }

Result<std::shared_ptr<ControlServer>> ControlServer::listen(asio::io_context& io, const std::string& path,
                                                             ControlHandlers handlers) {
    auto server = std::shared_ptr<ControlServer>(new ControlServer(io, path, std::move(handlers)));
    std::error_code ec;
    ::unlink(path.c_str());  // a stale socket from a previous run
    asio::local::stream_protocol::endpoint ep(path);
    server->acceptor_.open(ep.protocol(), ec);
    if (!ec) server->acceptor_.bind(ep, ec);
    if (!ec) server->acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return fail("control socket " + path + ": " + ec.message());
    server->accept();
    return server;
}

void ControlServer::accept() {
    acceptor_.async_accept([self = weak_from_this()](std::error_code ec, asio::local::stream_protocol::socket s) {
        auto server = self.lock();
        if (!server || ec) return;
        server->serve(std::make_shared<asio::local::stream_protocol::socket>(std::move(s)));
        server->accept();
    });
}

void ControlServer::serve(std::shared_ptr<asio::local::stream_protocol::socket> socket) {
    auto buffer = std::make_shared<asio::streambuf>(kMaxRequestLine);
    asio::async_read_until(
        *socket, *buffer, '\n',
        [self = weak_from_this(), socket, buffer](std::error_code ec, size_t n) {
            auto server = self.lock();
            if (!server || ec) return;  // disconnect, or a line longer than kMaxRequestLine: drop the client
            std::string line(asio::buffers_begin(buffer->data()), asio::buffers_begin(buffer->data()) + n);
            buffer->consume(n);
            auto out = std::make_shared<std::string>(server->handle_line(line) + "\n");
            asio::async_write(*socket, asio::buffer(*out), [self, socket, buffer, out](std::error_code wec, size_t) {
                auto s = self.lock();
                if (!s) return;
                if (auto then = std::exchange(s->after_reply_, {})) then();
                if (!wec) s->serve(socket);
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
