#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <future>
#include <thread>

#include "tests/unit/vhost/test_util.h"
#include "vhost/socket.h"

using namespace kite;
using namespace kite::vhost;

namespace {

struct Pair {
    Connection a;
    Connection b;
};

Pair connected_pair() {
    auto fds = socket_pair().value();
    return Pair{Connection(std::move(fds.first)), Connection(std::move(fds.second))};
}

// Sends raw bytes with `nfds` eventfds attached, bypassing Connection (to build broken messages).
void send_raw(int fd, std::span<const uint8_t> bytes, size_t nfds) {
    std::vector<UniqueFd> owned;
    std::vector<int> raw;
    for (size_t i = 0; i < nfds; ++i) {
        owned.push_back(test::make_eventfd());
        raw.push_back(owned.back().get());
    }
    iovec iov{const_cast<uint8_t*>(bytes.data()), bytes.size()};
    std::vector<char> control(CMSG_SPACE(sizeof(int) * 16));
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    std::memcpy(CMSG_DATA(c), raw.data(), sizeof(int) * nfds);
    REQUIRE(::sendmsg(fd, &msg, 0) == static_cast<ssize_t>(bytes.size()));
}

}  // namespace

TEST_CASE("a message with fds arrives whole with the fds owned by the receiver") {
    auto pair = connected_pair();
    auto efd = test::make_eventfd();
    int fds[] = {efd.get(), efd.get()};

    auto sent = pair.a.send(13, kVersion, bytes_of(uint64_t{1}), fds);
    auto msg = pair.b.receive(Millis(1000));

    REQUIRE(sent.has_value());
    REQUIRE(msg.has_value());
    CHECK(msg->header.request == 13);
    CHECK(*payload_as<uint64_t>(msg->payload) == 1);
    CHECK(msg->fds.size() == 2);
    CHECK(msg->fds[0].get() != efd.get());
}

TEST_CASE("received fds are closed when the message is dropped") {
    auto pair = connected_pair();
    auto efd = test::make_eventfd();
    int fds[] = {efd.get(), efd.get(), efd.get()};
    size_t before = test::count_open_fds();

    REQUIRE(pair.a.send(5, kVersion, {}, fds).has_value());
    { auto msg = pair.b.receive(Millis(1000)); }

    CHECK(test::count_open_fds() == before);
}

TEST_CASE("more than 8 fds is an error and every received fd is closed") {
    auto pair = connected_pair();
    auto bytes = encode_message(5, kVersion, {});
    size_t before = test::count_open_fds();

    send_raw(pair.a.fd(), bytes, 10);
    auto msg = pair.b.receive(Millis(1000));

    CHECK_FALSE(msg.has_value());
    CHECK(test::count_open_fds() == before);
}

TEST_CASE("a message sent in pieces is reassembled") {
    auto pair = connected_pair();
    auto bytes = encode_message(2, kVersion, bytes_of(uint64_t{0xabcdef}));
    std::thread writer([&] {
        for (uint8_t byte : bytes) {
            REQUIRE(::send(pair.a.fd(), &byte, 1, 0) == 1);
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    });

    auto msg = pair.b.receive(Millis(2000));
    writer.join();

    REQUIRE(msg.has_value());
    CHECK(*payload_as<uint64_t>(msg->payload) == 0xabcdef);
}

TEST_CASE("a silent peer makes receive time out instead of hanging") {
    auto pair = connected_pair();
    auto msg = pair.b.receive(Millis(50));
    REQUIRE_FALSE(msg.has_value());
    CHECK(msg.error().code == ETIMEDOUT);
}

TEST_CASE("a peer that stops mid-message makes receive time out") {
    auto pair = connected_pair();
    auto bytes = encode_message(2, kVersion, bytes_of(uint64_t{1}));
    REQUIRE(::send(pair.a.fd(), bytes.data(), 14, 0) == 14);
    auto msg = pair.b.receive(Millis(50));
    REQUIRE_FALSE(msg.has_value());
    CHECK(msg.error().code == ETIMEDOUT);
}

TEST_CASE("a closed peer is reported as ECONNRESET") {
    auto fds = socket_pair().value();
    Connection b(std::move(fds.second));
    fds.first.reset();
    auto msg = b.receive(Millis(1000));
    REQUIRE_FALSE(msg.has_value());
    CHECK(msg.error().code == ECONNRESET);
}

TEST_CASE("a header announcing a huge payload is rejected without reading it") {
    auto pair = connected_pair();
    Header header{5, kVersion, 0x10000000};
    REQUIRE(::send(pair.a.fd(), &header, sizeof(header), 0) == sizeof(header));
    CHECK_FALSE(pair.b.receive(Millis(1000)).has_value());
}

TEST_CASE("connect retries until the back-end listens") {
    auto path = test::temp_socket_path("retry");
    std::thread server([&] {
        std::this_thread::sleep_for(Millis(100));
        auto listener = Listener::listen(path);
        REQUIRE(listener.has_value());
        auto conn = listener->accept(Millis(2000));
        REQUIRE(conn.has_value());
        REQUIRE(conn->send(1, kVersion | kFlagReply, bytes_of(uint64_t{7})).has_value());
    });

    auto conn = Connection::connect(path, Millis(3000));
    REQUIRE(conn.has_value());
    auto msg = conn->receive(Millis(2000));
    server.join();

    REQUIRE(msg.has_value());
    CHECK(*payload_as<uint64_t>(msg->payload) == 7);
}

TEST_CASE("connect gives up after its timeout") {
    auto conn = Connection::connect(test::temp_socket_path("nobody"), Millis(60));
    CHECK_FALSE(conn.has_value());
}

TEST_CASE("an overlong socket path is refused") {
    CHECK_FALSE(Listener::listen(std::string(200, 'x')).has_value());
}

namespace {

// A Unix listener with a backlog of 0 that never accepts: after one queued connection the kernel makes
// every further connect wait (a blocking connect waits for good).
struct FullListener {
    UniqueFd listener;
    UniqueFd queued;
};

FullListener full_listener(const std::string& path) {
    ::unlink(path.c_str());
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    FullListener full;
    full.listener = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(::bind(full.listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    REQUIRE(::listen(full.listener.get(), 0) == 0);
    full.queued = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    REQUIRE(::connect(full.queued.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    return full;
}

}  // namespace

TEST_CASE("connect to a listener that never accepts returns at its deadline") {
    auto path = test::temp_socket_path("full");
    auto full = full_listener(path);
    using Clock = std::chrono::steady_clock;

    auto started = Clock::now();
    auto attempt = std::async(std::launch::async, [&] { return Connection::connect(path, Millis(200)); });
    bool returned = attempt.wait_for(std::chrono::seconds(3)) == std::future_status::ready;
    if (!returned) full.listener.reset();  // unblocks a blocking connect, so the test ends
    auto conn = attempt.get();
    auto took = Clock::now() - started;
    ::unlink(path.c_str());

    CHECK(returned);
    CHECK(took < std::chrono::milliseconds(1500));
    REQUIRE_FALSE(conn.has_value());
    CHECK(conn.error().code == ETIMEDOUT);
    CHECK(conn.error().message.find("does not accept") != std::string::npos);
}

TEST_CASE("a reconnect attempt (no wait) to a listener that never accepts returns at once") {
    auto path = test::temp_socket_path("full0");
    auto full = full_listener(path);
    using Clock = std::chrono::steady_clock;

    auto started = Clock::now();
    auto attempt = std::async(std::launch::async, [&] { return Connection::connect(path, Millis(0)); });
    bool returned = attempt.wait_for(std::chrono::seconds(3)) == std::future_status::ready;
    if (!returned) full.listener.reset();
    auto conn = attempt.get();
    auto took = Clock::now() - started;
    ::unlink(path.c_str());

    CHECK(returned);
    CHECK(took < std::chrono::milliseconds(500));
    CHECK_FALSE(conn.has_value());
}

TEST_CASE("the peer of a vhost-user socket must be Kite's user or root, or exactly the configured uid") {
    const PeerRule by_default{};
    const PeerRule only_1000{1000};

    CHECK(check_peer_uid(1000, 1000, by_default).has_value());
    CHECK(check_peer_uid(0, 1000, by_default).has_value());
    CHECK_FALSE(check_peer_uid(1001, 1000, by_default).has_value());
    CHECK(check_peer_uid(1000, 0, only_1000).has_value());
    CHECK_FALSE(check_peer_uid(0, 0, only_1000).has_value());
    CHECK_FALSE(check_peer_uid(1001, 1001, only_1000).has_value());
    auto refused = check_peer_uid(1001, 1000, by_default);
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().code == EACCES);
    CHECK(refused.error().message.find("uid 1001") != std::string::npos);
}

TEST_CASE("connect accepts a back-end of Kite's own user and refuses one that is not the configured uid") {
    auto path = test::temp_socket_path("peer");
    auto listener = Listener::listen(path);
    REQUIRE(listener.has_value());
    const uint32_t own = ::geteuid();

    auto mine = Connection::connect(path, Millis(1000));
    auto accepted = listener->accept(Millis(1000));
    auto other = Connection::connect(path, Millis(1000), PeerRule{own + 1});

    CHECK(mine.has_value());
    CHECK(accepted.has_value());
    REQUIRE_FALSE(other.has_value());
    CHECK(other.error().code == EACCES);
    CHECK(other.error().message.find(path) != std::string::npos);
}
