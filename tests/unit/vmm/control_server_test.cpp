#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include "vmm/control_server.h"

using namespace kite;
using json = nlohmann::json;

namespace {

struct Fixture {
    asio::io_context io;
    int pauses = 0;
    int shutdowns = 0;
    std::string snapshot_path;
    std::shared_ptr<ControlServer> server;

    Fixture() {
        ControlHandlers h;
        h.pause = [this]() -> Result<void> { ++pauses; return {}; };
        h.resume = []() -> Result<void> { return fail("not paused"); };
        h.snapshot = [this](const std::string& p) -> Result<void> { snapshot_path = p; return {}; };
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
