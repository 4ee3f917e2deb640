#include <doctest/doctest.h>

#include <asio.hpp>
#include <cstring>

#include "tests/unit/vhost/test_util.h"
#include "vhost/backend_channel.h"

using namespace kite;
using namespace kite::vhost;

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kRegion = 256 * kPage;
constexpr uint32_t kAsk = kVersion | kFlagNeedReply;

VhostUserMMap mmap_msg(uint8_t shmid, uint64_t fd_offset, uint64_t shm_offset, uint64_t len, uint64_t flags = 0) {
    VhostUserMMap m{};
    m.shmid = shmid;
    m.fd_offset = fd_offset;
    m.shm_offset = shm_offset;
    m.len = len;
    m.flags = flags;
    return m;
}

// A BackendChannel over a socketpair with a 1 MiB region 0; `peer` plays the back-end.
struct Fixture {
    explicit Fixture(uint64_t features = protocol_feature::kShmem | protocol_feature::kReplyAck) {
        REQUIRE(table.add_region(0, kRegion).has_value());
        auto pair = socket_pair().value();
        peer.emplace(std::move(pair.second));
        BackendChannel::Options options;
        options.protocol_features = features;
        options.shm = &table;
        options.on_config_change = [this] { ++config_changes; };
        options.on_closed = [this] { ++closes; };
        options.message_timeout = Millis(100);
        channel = std::make_unique<BackendChannel>(std::move(pair.first), std::move(options));
    }

    // Sends one request, lets the channel serve it, returns the u64 status of the reply.
    uint64_t request(BackendReq req, std::span<const uint8_t> payload, std::vector<int> fds = {}, uint32_t flags = kAsk) {
        REQUIRE(peer->send(static_cast<uint32_t>(req), flags, payload, fds).has_value());
        channel->serve_pending();
        auto reply = peer->receive(Millis(1000));
        REQUIRE(reply.has_value());
        return validate_backend_reply(req, *reply).value();
    }
    uint64_t map(const VhostUserMMap& m, std::vector<int> fds) { return request(BackendReq::ShmemMap, bytes_of(m), fds); }
    uint64_t unmap(const VhostUserMMap& m) { return request(BackendReq::ShmemUnmap, bytes_of(m)); }
    std::byte* window() { return table.window(0)->host_base(); }

    ShmWindowTable table;
    std::optional<Connection> peer;
    std::unique_ptr<BackendChannel> channel;
    int config_changes = 0;
    int closes = 0;
    UniqueFd memfd = test::pattern_memfd(16 * kPage, 3);
};

}  // namespace

TEST_CASE("parse_backend_request turns a valid SHMEM_MAP into a request that owns its fd") {
    Message msg;
    msg.header = Header{9, kAsk, 40};
    msg.payload = bytes_of(mmap_msg(0, kPage, 2 * kPage, kPage, kShmemMapReadWrite));
    msg.fds.push_back(test::make_eventfd());

    auto request = parse_backend_request(std::move(msg));

    REQUIRE(request.has_value());
    auto& map = std::get<ShmemMapRequest>(*request);
    CHECK(map.shm_offset == 2 * kPage);
    CHECK(map.writable);
    CHECK(map.fd.valid());
}

TEST_CASE("SHMEM_MAP maps the back-end's fd into the region and the reply is 0") {
    Fixture f;
    auto status = f.map(mmap_msg(0, kPage, 4 * kPage, 2 * kPage), {f.memfd.get()});
    CHECK(status == 0);
    CHECK(std::to_integer<uint8_t>(f.window()[4 * kPage]) == static_cast<uint8_t>(kPage * 7 + 3));
    CHECK(std::to_integer<uint8_t>(f.window()[4 * kPage + 1]) == static_cast<uint8_t>((kPage + 1) * 7 + 3));
    CHECK(f.table.window(0)->mappings().size() == 1);
}

TEST_CASE("SHMEM_UNMAP of exactly a mapping removes it and the reply is 0") {
    Fixture f;
    REQUIRE(f.map(mmap_msg(0, 0, 4 * kPage, 2 * kPage), {f.memfd.get()}) == 0);
    CHECK(f.unmap(mmap_msg(0, 0, 4 * kPage, 2 * kPage)) == 0);
    CHECK(f.table.window(0)->mappings().empty());
}

TEST_CASE("SHMEM_MAP refusals get a non-zero reply and change nothing") {
    Fixture f;
    int fd = f.memfd.get();
    CHECK(f.map(mmap_msg(1, 0, 0, kPage), {fd}) != 0);                         // unknown shmid
    CHECK(f.map(mmap_msg(0, 0, 0, kPage), {}) != 0);                           // no fd
    CHECK(f.map(mmap_msg(0, 0, 0, kPage), {fd, fd}) != 0);                     // two fds
    CHECK(f.map(mmap_msg(0, 0, 0, 0), {fd}) != 0);                             // len 0
    CHECK(f.map(mmap_msg(0, 1, 0, kPage), {fd}) != 0);                         // fd_offset unaligned
    CHECK(f.map(mmap_msg(0, 0, 100, kPage), {fd}) != 0);                       // shm_offset unaligned
    CHECK(f.map(mmap_msg(0, 0, 0, kPage + 1), {fd}) != 0);                     // len unaligned
    CHECK(f.map(mmap_msg(0, 0, ~uint64_t{0} - kPage + 1, 2 * kPage), {fd}) != 0);  // shm_offset + len overflows
    CHECK(f.map(mmap_msg(0, ~uint64_t{0} - kPage + 1, 0, 2 * kPage), {fd}) != 0);  // fd_offset + len overflows
    CHECK(f.map(mmap_msg(0, 0, kRegion - kPage, 2 * kPage), {fd}) != 0);       // beyond the region
    CHECK(f.map(mmap_msg(0, 0, 0, kPage, 2), {fd}) != 0);                      // unknown flag bit
    CHECK(f.table.window(0)->mappings().empty());
    CHECK_FALSE(f.channel->closed());
}

TEST_CASE("SHMEM_MAP over an existing mapping is refused") {
    Fixture f;
    REQUIRE(f.map(mmap_msg(0, 0, 4 * kPage, 4 * kPage), {f.memfd.get()}) == 0);
    CHECK(f.map(mmap_msg(0, 0, 6 * kPage, 4 * kPage), {f.memfd.get()}) != 0);
    CHECK(f.map(mmap_msg(0, 0, 2 * kPage, 4 * kPage), {f.memfd.get()}) != 0);
    CHECK(f.table.window(0)->mappings().size() == 1);
}

TEST_CASE("SHMEM_UNMAP that is not exactly one mapping is refused") {
    Fixture f;
    REQUIRE(f.map(mmap_msg(0, 0, 4 * kPage, 4 * kPage), {f.memfd.get()}) == 0);
    CHECK(f.unmap(mmap_msg(0, 0, 4 * kPage, 2 * kPage)) != 0);    // part of it
    CHECK(f.unmap(mmap_msg(0, 0, 4 * kPage, 8 * kPage)) != 0);    // more than it
    CHECK(f.unmap(mmap_msg(0, 0, 20 * kPage, 4 * kPage)) != 0);   // nothing there
    CHECK(f.unmap(mmap_msg(1, 0, 4 * kPage, 4 * kPage)) != 0);    // unknown shmid
    CHECK(f.unmap(mmap_msg(0, 0, 4 * kPage, 4 * kPage, 4)) != 0); // unknown flag bit
    CHECK(f.table.window(0)->mappings().size() == 1);
}

TEST_CASE("SHMEM_UNMAP with an fd is refused and the fd closed") {
    Fixture f;
    REQUIRE(f.map(mmap_msg(0, 0, 0, kPage), {f.memfd.get()}) == 0);
    size_t before = test::count_open_fds();
    CHECK(f.request(BackendReq::ShmemUnmap, bytes_of(mmap_msg(0, 0, 0, kPage)), {f.memfd.get()}) != 0);
    CHECK(test::count_open_fds() == before);
    CHECK(f.table.window(0)->mappings().size() == 1);
}

TEST_CASE("SHMEM_MAP is refused when SHMEM was not negotiated") {
    Fixture f(protocol_feature::kReplyAck);
    CHECK(f.map(mmap_msg(0, 0, 0, kPage), {f.memfd.get()}) != 0);
    CHECK(f.table.window(0)->mappings().empty());
}

TEST_CASE("a refused request without NEED_REPLY gets no reply and the channel stays up") {
    Fixture f;
    REQUIRE(f.peer->send(9, kVersion, bytes_of(mmap_msg(0, 0, 0, 0)), std::vector<int>{f.memfd.get()}).has_value());
    f.channel->serve_pending();
    CHECK_FALSE(f.peer->readable_now());
    CHECK_FALSE(f.channel->closed());
    CHECK(f.channel->refused() == 1);
}

TEST_CASE("no reply is sent when REPLY_ACK was not negotiated, even with NEED_REPLY") {
    Fixture f(protocol_feature::kShmem);
    REQUIRE(f.peer->send(9, kAsk, bytes_of(mmap_msg(0, 0, 0, kPage)), std::vector<int>{f.memfd.get()}).has_value());
    f.channel->serve_pending();
    CHECK_FALSE(f.peer->readable_now());
    CHECK(f.table.window(0)->mappings().size() == 1);
}

TEST_CASE("unknown and malformed requests get an error reply and the channel keeps working") {
    Fixture f;
    CHECK(f.request(static_cast<BackendReq>(11), {}) != 0);
    CHECK(f.request(BackendReq::IotlbMsg, bytes_of(IotlbMsg{})) != 0);
    CHECK(f.request(BackendReq::ShmemMap, std::vector<uint8_t>(39), {f.memfd.get()}) != 0);
    CHECK(f.request(BackendReq::ShmemMap, bytes_of(mmap_msg(0, 0, 0, kPage)), {f.memfd.get()}, kVersion | kFlagNeedReply | 0x40) != 0);
    CHECK(f.map(mmap_msg(0, 0, 0, kPage), {f.memfd.get()}) == 0);
    CHECK_FALSE(f.channel->closed());
}

TEST_CASE("CONFIG_CHANGE_MSG calls the config-change callback") {
    Fixture f;
    CHECK(f.request(BackendReq::ConfigChangeMsg, {}) == 0);
    CHECK(f.config_changes == 1);
}

TEST_CASE("a received SHMEM_MAP fd is closed once mapped, and a refused one at once") {
    Fixture f;
    size_t before = test::count_open_fds();
    REQUIRE(f.map(mmap_msg(0, 0, 0, kPage), {f.memfd.get()}) == 0);
    REQUIRE(f.map(mmap_msg(7, 0, 0, kPage), {f.memfd.get()}) != 0);
    CHECK(test::count_open_fds() == before);
}

TEST_CASE("a broken stream closes the channel and drops every mapping") {
    Fixture f;
    REQUIRE(f.map(mmap_msg(0, 0, 0, kPage), {f.memfd.get()}) == 0);
    Header huge{9, kAsk, 1u << 30};
    REQUIRE(::send(f.peer->fd(), &huge, sizeof(huge), 0) == sizeof(huge));
    f.channel->serve_pending();
    CHECK(f.channel->closed());
    CHECK(f.closes == 1);
    CHECK(f.table.window(0)->mappings().empty());
}

TEST_CASE("the back-end hanging up closes the channel and drops every mapping") {
    Fixture f;
    REQUIRE(f.map(mmap_msg(0, 0, 0, kPage), {f.memfd.get()}) == 0);
    f.peer.reset();
    f.channel->serve_pending();
    CHECK(f.channel->closed());
    CHECK(f.table.window(0)->mappings().empty());
}

TEST_CASE("the channel serves requests from the asio loop") {
    asio::io_context io;  // outlives the channel, as the VMM's loop does
    Fixture f;
    f.channel->start(io);
    REQUIRE(f.peer->send(2, kAsk, {}).has_value());
    io.run_for(std::chrono::milliseconds(100));
    auto reply = f.peer->receive(Millis(1000));
    REQUIRE(reply.has_value());
    CHECK(validate_backend_reply(BackendReq::ConfigChangeMsg, *reply).value() == 0);
    CHECK(f.config_changes == 1);
}
