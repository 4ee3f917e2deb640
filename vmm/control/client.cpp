#include "vmm/control/client.h"

#include <asio.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace kite {

int run_control_client(const std::string& socket_path, const std::vector<std::string>& args) {
    using json = nlohmann::json;
    if (args.empty()) {
        std::fprintf(stderr, "kite: no control command given\n");
        return 2;
    }
    json request{{"command", args[0]}};
    if (args[0] == "snapshot") {
        if (args.size() < 2) {
            std::fprintf(stderr, "kite: snapshot needs a file name\n");
            return 2;
        }
        request["path"] = args[1];
        // Optional "key=value" fields (via=, then=); the VMM validates the values.
        for (size_t i = 2; i < args.size(); ++i) {
            auto eq = args[i].find('=');
            if (eq == std::string::npos) continue;
            request[args[i].substr(0, eq)] = args[i].substr(eq + 1);
        }
    }
    asio::io_context io;
    asio::local::stream_protocol::socket socket(io);
    std::error_code ec;
    socket.connect(asio::local::stream_protocol::endpoint(socket_path), ec);
    if (ec) {
        std::fprintf(stderr, "kite: cannot reach the VMM at %s: %s\n", socket_path.c_str(), ec.message().c_str());
        return 2;
    }
    std::string line = request.dump() + "\n";
    asio::write(socket, asio::buffer(line), ec);
    asio::streambuf buffer;
    if (!ec) asio::read_until(socket, buffer, '\n', ec);
    if (ec) {
        std::fprintf(stderr, "kite: control request failed: %s\n", ec.message().c_str());
        return 2;
    }
    std::string response(asio::buffers_begin(buffer.data()), asio::buffers_end(buffer.data()));
    std::fputs(response.c_str(), stdout);
    json parsed = json::parse(response, nullptr, false);
    return parsed.is_object() && parsed.value("ok", false) ? 0 : 1;
}

}  // namespace kite
