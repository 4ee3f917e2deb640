#include <doctest/doctest.h>

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <string>
#include <vector>

#include "vmm/control/server.h"

using namespace kite;
using json = nlohmann::json;

namespace {

struct Fixture {
    asio::io_context io;
    int pauses = 0;
    int shutdowns = 0;
    std::string snapshot_path;
    SnapshotRequest last_request;
    std::shared_ptr<ControlServer> server;

    // `pause` replaces the counting pause handler.
    explicit Fixture(std::function<Result<void>()> pause = {}) {
        ControlHandlers h;
        h.pause = pause ? pause : [this]() -> Result<void> { ++pauses; return {}; };
        h.resume = []() -> Result<void> { return fail("not paused"); };
        h.snapshot = [this](const SnapshotRequest& r) -> Result<SnapshotReport> {
            snapshot_path = r.path;
            last_request = r;
            SnapshotReport report;
            report.pause_ms = 12.5;
            report.memory_bytes = 1 << 20;
            return report;
        };
        h.shutdown = [this] { ++shutdowns; };
        h.state = [] { return std::string("running"); };
        h.vcpus = 2;
        h.memory = 512 << 20;
        std::string path = "/tmp/kite-control-test-" + std::to_string(::getpid()) + ".sock";
        server = *ControlServer::listen(io, path, h);
    }
};

}  // namespace

TEST_CASE("status reports state, vCPUs and memory") {
    Fixture f;
    auto r = json::parse(f.server->handle_line(R"({"command":"status"})"));
    CHECK(r["ok"] == true);
    CHECK(r["state"] == "running");
    CHECK(r["vcpus"] == 2);
    CHECK(r["memory"] == 512 << 20);
}

TEST_CASE("pause calls the pause handler once") {
    Fixture f;
    auto r = json::parse(f.server->handle_line(R"({"command":"pause"})"));
    CHECK(r["ok"] == true);
    CHECK(f.pauses == 1);
}

TEST_CASE("a handler error is reported with its message") {
    Fixture f;
    auto r = json::parse(f.server->handle_line(R"({"command":"resume"})"));
    CHECK(r["ok"] == false);
    CHECK(r["error"] == "not paused");
    CHECK(r["kind"] == "invalid");
}

TEST_CASE("a failed system call is reported with kind system, so a client knows it may retry") {
    Fixture f([]() -> Result<void> { return std::unexpected(errno_error("pause", EIO)); });
    auto r = json::parse(f.server->handle_line(R"({"command":"pause"})"));
    CHECK(r["ok"] == false);
    CHECK(r["kind"] == "system");
}

TEST_CASE("snapshot passes the path and refuses a request without one") {
    Fixture f;
    auto good = json::parse(f.server->handle_line(R"({"command":"snapshot","path":"/tmp/s.snap"})"));
    auto bad = json::parse(f.server->handle_line(R"({"command":"snapshot"})"));
    CHECK(good["ok"] == true);
    CHECK(f.snapshot_path == "/tmp/s.snap");
    CHECK(bad["ok"] == false);
}

TEST_CASE("malformed requests get an error and call no handler") {
    Fixture f;
    for (const char* line : {"", "not json", "[1,2]", R"({"command":5})", R"({"command":"explode"})", "{\"command\":"}) {
        auto r = json::parse(f.server->handle_line(line));
        CHECK(r["ok"] == false);
    }
    CHECK(f.pauses == 0);
    CHECK(f.shutdowns == 0);
}

TEST_CASE("snapshot reply carries the report's figures") {
    Fixture f;
    auto r = json::parse(f.server->handle_line(R"({"command":"snapshot","path":"/tmp/s.snap"})"));
    CHECK(r["ok"] == true);
    CHECK(r["pause_ms"] == 12.5);
    CHECK(r["memory_bytes"] == 1 << 20);
}

TEST_CASE("snapshot defaults to a direct copy that leaves the VM as it was") {
    auto r = parse_snapshot_request(R"({"command":"snapshot","path":"/a"})");
    REQUIRE(r.has_value());
    CHECK(r->path == "/a");
    CHECK(r->via == SnapshotVia::Direct);
    CHECK(r->then == AfterSnapshot::Previous);
}

TEST_CASE("snapshot via mirror then stop is parsed") {
    auto r = parse_snapshot_request(R"({"command":"snapshot","path":"/a","via":"mirror","then":"stop"})");
    REQUIRE(r.has_value());
    CHECK(r->via == SnapshotVia::Mirror);
    CHECK(r->then == AfterSnapshot::Stop);
}

TEST_CASE("snapshot with a bad via or then is refused, naming the field, and no snapshot is taken") {
    Fixture f;
    for (const char* line : {R"({"command":"snapshot","path":"/a","via":"disk"})",
                             R"({"command":"snapshot","path":"/a","via":3})",
                             R"({"command":"snapshot","path":"/a","then":"explode"})",
                             R"({"command":"snapshot","path":"/a","then":null})"}) {
        auto r = json::parse(f.server->handle_line(line));
        CHECK(r["ok"] == false);
        std::string error = r["error"];
        CHECK((error.find("via") != std::string::npos || error.find("then") != std::string::npos));
    }
    CHECK(f.snapshot_path.empty());
}

TEST_CASE("snapshot path must be a non-empty string without NUL") {
    CHECK_FALSE(parse_snapshot_request(R"({"command":"snapshot","path":""})").has_value());
    CHECK_FALSE(parse_snapshot_request(R"({"command":"snapshot","path":["a"]})").has_value());
    CHECK_FALSE(parse_snapshot_request(R"({"command":"snapshot","path":"a\u0000b"})").has_value());
}

TEST_CASE("a handler's snapshot failure is reported and the server keeps answering") {
    asio::io_context io;
    ControlHandlers h;
    h.snapshot = [](const SnapshotRequest&) -> Result<SnapshotReport> { return fail("device 'net' cannot save"); };
    h.state = [] { return std::string("running"); };
    std::string path = "/tmp/kite-control-test-fail-" + std::to_string(::getpid()) + ".sock";
    auto server = *ControlServer::listen(io, path, h);
    auto r = json::parse(server->handle_line(R"({"command":"snapshot","path":"/a"})"));
    auto s = json::parse(server->handle_line(R"({"command":"status"})"));
    CHECK(r["ok"] == false);
    CHECK(r["error"] == "device 'net' cannot save");
    CHECK(s["ok"] == true);
}

TEST_CASE("a shutdown that stops the event loop still answers its client first") {
    asio::io_context io;
    std::shared_ptr<ControlServer> server;
    ControlHandlers h;
    // Like the VMM: stopping ends the event loop, so nothing written after it would reach the client.
    h.shutdown = [&] { server->after_reply([&] { io.stop(); }); };
    h.state = [] { return std::string("running"); };
    std::string path = "/tmp/kite-control-test-reply-" + std::to_string(::getpid()) + ".sock";
    server = *ControlServer::listen(io, path, h);
    asio::local::stream_protocol::socket client(io);
    client.connect(asio::local::stream_protocol::endpoint(path));
    asio::write(client, asio::buffer(std::string("{\"command\":\"shutdown\"}\n")));
    io.run_for(std::chrono::seconds(5));
    bool loop_stopped = io.stopped();
    asio::streambuf reply;
    std::error_code ec;
    client.non_blocking(true);
    asio::read_until(client, reply, '\n', ec);
    std::string line(asio::buffers_begin(reply.data()), asio::buffers_end(reply.data()));
    CHECK(loop_stopped);
    REQUIRE_FALSE(ec);
    CHECK(json::parse(line)["ok"] == true);
}

namespace {

std::string socket_path(const char* name) {
    return "/tmp/kite-control-" + std::string(name) + "-" + std::to_string(::getpid()) + ".sock";
}

ControlHandlers status_only() {
    ControlHandlers h;
    h.state = [] { return std::string("running"); };
    return h;
}

// A connected client that sends one status request.
std::unique_ptr<asio::local::stream_protocol::socket> status_client(asio::io_context& io, const std::string& path) {
    auto client = std::make_unique<asio::local::stream_protocol::socket>(io);
    client->connect(asio::local::stream_protocol::endpoint(path));
    asio::write(*client, asio::buffer(std::string("{\"command\":\"status\"}\n")));
    return client;
}

// What the server has sent a client so far (without waiting): its lines, and whether it closed.
struct Received {
    std::string text;
    bool closed = false;
};
Received received(asio::local::stream_protocol::socket& client) {
    Received out;
    client.non_blocking(true);
    char buf[4096];
    for (;;) {
        std::error_code ec;
        size_t n = client.read_some(asio::buffer(buf), ec);
        out.text.append(buf, n);
        // A server that closes with the client's request unread resets the connection instead.
        if (ec == asio::error::eof || ec == asio::error::connection_reset) out.closed = true;
        if (ec) return out;
    }
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("the control socket is mode 0600 whatever the umask") {
    asio::io_context io;
    const std::string path = socket_path("mode");
    mode_t old = ::umask(0);
    auto server = ControlServer::listen(io, path, status_only());
    ::umask(old);
    REQUIRE(server.has_value());
    struct stat st {};
    REQUIRE(::lstat(path.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 07777) == 0600);
}

TEST_CASE("a regular file at the control socket's path is refused and left in place") {
    asio::io_context io;
    const std::string path = socket_path("file");
    {
        std::ofstream(path) << "precious";
    }
    auto server = ControlServer::listen(io, path, status_only());
    std::ifstream in(path);
    std::string content;
    in >> content;
    ::unlink(path.c_str());
    REQUIRE_FALSE(server.has_value());
    CHECK(contains(server.error().message, "not a socket"));
    CHECK(contains(server.error().message, path));
    CHECK(content == "precious");
}

TEST_CASE("a stale socket at the control socket's path is replaced") {
    asio::io_context io;
    const std::string path = socket_path("stale");
    { auto first = ControlServer::listen(io, path, status_only()); }
    asio::local::stream_protocol::acceptor stale(io, asio::local::stream_protocol::endpoint(path));
    stale.close();  // a socket file nobody listens on, as a crashed Kite leaves

    auto server = ControlServer::listen(io, path, status_only());

    CHECK(server.has_value());
}

TEST_CASE("accepting resumes after the process ran out of file descriptors") {
    asio::io_context io;
    const std::string path = socket_path("emfile");
    auto server = *ControlServer::listen(io, path, status_only());
    // Under UBSan, a type check seen for the first time opens a pipe, which fails while the descriptor
    // table is full: go once through what runs then (a round trip, an error message, a log line) first.
    auto warm_up = status_client(io, path);
    io.run_for(std::chrono::milliseconds(50));
    spdlog::info("control server test: {} next", std::error_code(EMFILE, std::system_category()).message());
    auto client = status_client(io, path);
    rlimit old{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &old) == 0);
    rlimit low = old;
    low.rlim_cur = 256;
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
    std::vector<int> fillers;
    for (int fd; (fd = ::dup(0)) >= 0;) fillers.push_back(fd);
    io.run_for(std::chrono::milliseconds(50));  // accept fails with EMFILE
    for (int fd : fillers) ::close(fd);
    ::setrlimit(RLIMIT_NOFILE, &old);

    io.run_for(std::chrono::milliseconds(500));

    CHECK(fillers.size() > 0);
    CHECK(contains(received(*client).text, "\"ok\":true"));
}

TEST_CASE("clients beyond the limit get an error line and are closed; the others are served") {
    asio::io_context io;
    const std::string path = socket_path("limit");
    auto server = *ControlServer::listen(io, path, status_only(), ControlLimits{.max_clients = 2});
    auto a = status_client(io, path);
    auto b = status_client(io, path);
    io.run_for(std::chrono::milliseconds(100));
    auto c = status_client(io, path);

    io.run_for(std::chrono::milliseconds(100));

    auto third = received(*c);
    CHECK(contains(received(*a).text, "\"ok\":true"));
    CHECK(contains(received(*b).text, "\"ok\":true"));
    CHECK(contains(third.text, "too many control clients"));
    CHECK(third.closed);
}

TEST_CASE("a client idle for longer than the limit is dropped, and its place freed") {
    asio::io_context io;
    const std::string path = socket_path("idle");
    auto server = *ControlServer::listen(io, path, status_only(),
                                         ControlLimits{.max_clients = 1, .idle_timeout = std::chrono::milliseconds(100)});
    asio::local::stream_protocol::socket idle(io);
    idle.connect(asio::local::stream_protocol::endpoint(path));

    io.run_for(std::chrono::milliseconds(400));
    auto next = status_client(io, path);
    io.run_for(std::chrono::milliseconds(100));

    CHECK(received(idle).closed);
    CHECK(contains(received(*next).text, "\"ok\":true"));
}
