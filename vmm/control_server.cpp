#include "vmm/control_server.h"

#include <unistd.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace kite {

namespace {

using json = nlohmann::json;
constexpr size_t kMaxRequestLine = 64 * 1024;

std::string reply(const Result<void>& r) {
    if (r) return json{{"ok", true}}.dump();
    return json{{"ok", false}, {"error", r.error().message}}.dump();
}

std::string error_reply(const std::string& message) { return json{{"ok", false}, {"error", message}}.dump(); }

}  // namespace

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
                if (s && !wec) s->serve(socket);
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
        auto path = request.find("path");
        if (path == request.end() || !path->is_string() || path->get<std::string>().empty())
            return error_reply("snapshot needs a \"path\" string");
        if (!handlers_.snapshot) return error_reply("snapshots are not available for this VM");
        return reply(handlers_.snapshot(*path));
    }
    return error_reply("unknown command \"" + command + "\"");
}

}  // namespace kite
