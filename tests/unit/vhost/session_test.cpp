#include <doctest/doctest.h>

#include <sys/mman.h>

#include <string>
#include <vector>

#include "memory/host_mapping.h"
#include "tests/unit/vhost/backend_thread.h"
#include "tests/unit/vhost/test_util.h"
#include "vhost/frontend.h"

using namespace kite;
using namespace kite::vhost;

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kVersion1 = 1ull << 32;
constexpr uint64_t kRamSize = 1 << 20;

BackendConfig backend_config() {
    BackendConfig config;
    config.shm_sizes = {64 * kPage};
    config.config_space = {1, 2, 3, 4, 5, 6, 7, 8};
    return config;
}

// A front-end connected to a BackendThread, with negotiated features and a 1 MiB memfd as guest RAM
// mapped on both sides (the front-end's user address is its own mapping, as in the VMM).
struct Session {
    explicit Session(std::string tag, std::function<void(Backend&)> setup = {})
        : path(test::temp_socket_path(tag)), backend(path, backend_config(), std::move(setup)) {
        FrontendOptions options;
        options.timeout = Millis(3000);
        options.trace = [this](std::string_view line) { trace.emplace_back(line); };
        frontend = std::move(Frontend::connect(path, Millis(3000), options).value());
        REQUIRE(frontend->get_features().has_value());
        REQUIRE(frontend->set_features(kVersion1 | kFeatureProtocolFeatures).has_value());
        REQUIRE(frontend->negotiate_protocol_features().has_value());
        REQUIRE(frontend->set_owner().has_value());
        REQUIRE(::ftruncate(ram_fd.get(), kRamSize) == 0);
        void* addr = ::mmap(nullptr, kRamSize, PROT_READ | PROT_WRITE, MAP_SHARED, ram_fd.get(), 0);
        REQUIRE(addr != MAP_FAILED);
        ram = HostMapping(addr, kRamSize);
        MemoryRegionFd region{{0, kRamSize, uaddr(0), 0}, ram_fd.get()};
        REQUIRE(frontend->set_mem_table(std::span(&region, 1)).has_value());
    }
    uint64_t uaddr(uint64_t gpa) const { return reinterpret_cast<uint64_t>(ram.data()) + gpa; }
    BackendChannel& open_channel() {
        sizes = frontend->get_shmem_config().value();
        REQUIRE(table.add_region(0, sizes[0]).has_value());
        BackendChannel::Options options;
        options.shm = &table;
        return *frontend->open_backend_channel(std::move(options)).value();
    }
    bool trace_has(std::string_view text) const {
        for (const auto& line : trace)
            if (line.find(text) != std::string::npos) return true;
        return false;
    }

    std::string path;
    std::vector<std::string> trace;
    UniqueFd ram_fd{::memfd_create("kite-ram", MFD_CLOEXEC)};
    HostMapping ram;
    ShmWindowTable table;
    std::vector<uint64_t> sizes;
    test::BackendThread backend;
    std::unique_ptr<Frontend> frontend;
};

}  // namespace

TEST_CASE("features and protocol features are negotiated with the back-end library") {
    Session s("features");
    auto features = s.backend.post([](Backend& b) { return b.acked_features(); });
    auto protocol = s.backend.post([](Backend& b) { return b.protocol_features(); });
    auto owner = s.backend.post([](Backend& b) { return b.owner_set(); });
    CHECK(features.get() == (kVersion1 | kFeatureProtocolFeatures));
    CHECK(protocol.get() == (backend_config().protocol_features & kOfferedProtocolFeatures));
    CHECK(s.frontend->has(protocol_feature::kShmem));
    CHECK(owner.get());
}

TEST_CASE("the back-end maps the memory table and reads what the front-end wrote") {
    Session s("memtable");
    std::memcpy(s.ram.data() + 0x8000, "kite", 4);
    auto seen = s.backend.post([](Backend& b) {
        auto bytes = b.memory().span(GuestAddress(0x8000), 4).value();
        return std::string(reinterpret_cast<const char*>(bytes.data()), 4);
    });
    CHECK(seen.get() == "kite");
}

TEST_CASE("vring setup reaches the back-end and GET_VRING_BASE returns the base") {
    Session s("vring");
    auto kick = test::make_eventfd();
    auto call = test::make_eventfd();
    REQUIRE(s.frontend->set_vring_num(0, 64).has_value());
    REQUIRE(s.frontend->set_vring_addr(VringAddr{0, 0, s.uaddr(0x1000), s.uaddr(0x3000), s.uaddr(0x2000), 0}).has_value());
    REQUIRE(s.frontend->set_vring_base(0, 5).has_value());
    REQUIRE(s.frontend->set_vring_call(0, call.get()).has_value());
    REQUIRE(s.frontend->set_vring_kick(0, kick.get()).has_value());
    REQUIRE(s.frontend->set_vring_enable(0, true).has_value());
    auto ring = s.backend.post([](Backend& b) {
        auto& r = b.vrings()[0];
        return std::tuple(r.num, r.enabled, r.queue.has_value(), r.call.valid(), r.kick.valid());
    });
    CHECK(ring.get() == std::tuple(64u, true, true, true, true));
    CHECK(s.frontend->get_vring_base(0).value() == 5);
}

TEST_CASE("a ring index outside the back-end's queues is refused through REPLY_ACK") {
    Session s("badring");
    CHECK_FALSE(s.frontend->set_vring_num(3, 64).has_value());
    CHECK(s.frontend->connected());
    CHECK(s.frontend->set_vring_num(0, 64).has_value());
}

TEST_CASE("config space, status, queue count, mem slots and inflight buffer round-trip") {
    Session s("misc");
    std::vector<uint8_t> data = {9, 9};
    REQUIRE(s.frontend->set_config(2, data).has_value());
    CHECK(s.frontend->get_config(0, 4).value() == std::vector<uint8_t>{1, 2, 9, 9});
    REQUIRE(s.frontend->set_status(0x0f).has_value());
    CHECK(s.frontend->get_status().value() == 0x0f);
    CHECK(s.frontend->get_queue_num().value() == 1);
    CHECK(s.frontend->get_max_mem_slots().value() == 8);
    auto inflight = s.frontend->get_inflight_fd(1, 64);
    REQUIRE(inflight.has_value());
    CHECK(inflight->fd.valid());
    CHECK(inflight->description.mmap_size == 16 + 16 * 64);
    CHECK(s.frontend->set_inflight_fd(inflight->description, inflight->fd.get()).has_value());
    CHECK(s.frontend->reset_device().has_value());
    CHECK(s.frontend->get_status().value() == 0);
}

TEST_CASE("ADD_MEM_REG and REM_MEM_REG change the back-end's memory") {
    Session s("memslots");
    UniqueFd extra(::memfd_create("kite-extra", MFD_CLOEXEC));
    REQUIRE(::ftruncate(extra.get(), kPage * 4) == 0);
    MemoryRegion region{0x100000000, kPage * 4, 0x7000000000, 0};
    REQUIRE(s.frontend->add_mem_reg(MemoryRegionFd{region, extra.get()}).has_value());
    auto added = s.backend.post([](Backend& b) { return b.memory().region_count(); });
    CHECK(added.get() == 2);
    REQUIRE(s.frontend->rem_mem_reg(region).has_value());
    auto removed = s.backend.post([](Backend& b) { return b.memory().region_count(); });
    CHECK(removed.get() == 1);
}

TEST_CASE("GET_SHMEM_CONFIG reports the back-end's region sizes") {
    Session s("shmconfig");
    auto sizes = s.frontend->get_shmem_config();
    REQUIRE(sizes.has_value());
    CHECK(sizes->size() == 256);
    CHECK((*sizes)[0] == 64 * kPage);
    CHECK((*sizes)[1] == 0);
}

TEST_CASE("SHMEM_MAP and SHMEM_UNMAP from the back-end library land in the front-end's window") {
    Session s("shmem");
    auto& channel = s.open_channel();
    auto map = s.backend.post([](Backend& b) {
        auto fd = test::pattern_memfd(8 * kPage, 11);
        return b.shmem_map(0, fd.get(), kPage, 4 * kPage, 2 * kPage, kShmemMapReadWrite);
    });
    auto mapped = test::serve_until(map, channel);
    REQUIRE(mapped.has_value());
    auto* window = s.table.window(0)->host_base();
    CHECK(std::to_integer<uint8_t>(window[4 * kPage + 5]) == static_cast<uint8_t>((kPage + 5) * 7 + 11));
    auto unmap = s.backend.post([](Backend& b) { return b.shmem_unmap(0, 4 * kPage, 2 * kPage); });
    CHECK(test::serve_until(unmap, channel).has_value());
    CHECK(s.table.window(0)->mappings().empty());
}

TEST_CASE("a bad back-end request gets an error reply and the channel stays usable") {
    Session s("badreq");
    auto& channel = s.open_channel();
    auto bad = s.backend.post([](Backend& b) {
        auto fd = test::pattern_memfd(kPage, 1);
        VhostUserMMap m{};
        m.len = 3;  // not a page multiple
        int fds[] = {fd.get()};
        return b.send_backend_request(static_cast<uint32_t>(BackendReq::ShmemMap), bytes_of(m), fds);
    });
    CHECK(test::serve_until(bad, channel).value() != 0);
    auto good = s.backend.post([](Backend& b) {
        auto fd = test::pattern_memfd(kPage, 1);
        return b.shmem_map(0, fd.get(), 0, 0, kPage, 0);
    });
    CHECK(test::serve_until(good, channel).has_value());
    CHECK(s.table.window(0)->mappings().size() == 1);
    CHECK_FALSE(channel.closed());
}

TEST_CASE("a back-end that maps while handling SET_STATUS does not deadlock the front-end") {
    // The back-end sends SHMEM_MAP with NEED_REPLY from inside SET_STATUS(DRIVER_OK), before it acks it;
    // the front-end must serve the channel while it waits for that ack.
    Session s("deadlock", [](Backend& b) {
        b.set_status_callback([&b](uint8_t status) {
            if ((status & 4) == 0) return;
            auto fd = test::pattern_memfd(kPage, 2);
            REQUIRE(b.shmem_map(0, fd.get(), 0, 0, kPage, 0).has_value());
        });
    });
    s.open_channel();
    CHECK(s.frontend->set_status(0x0f).has_value());
    CHECK(s.table.window(0)->mappings().size() == 1);
}

TEST_CASE("the trace shows decoded names in both directions") {
    Session s("trace");
    auto& channel = s.open_channel();
    auto map = s.backend.post([](Backend& b) {
        auto fd = test::pattern_memfd(kPage, 1);
        return b.shmem_map(0, fd.get(), 0, 0, kPage, 0);
    });
    REQUIRE(test::serve_until(map, channel).has_value());
    CHECK(s.trace_has("-> GET_FEATURES flags=0x1 size=0"));
    CHECK(s.trace_has("<- GET_FEATURES reply flags=0x5 REPLY size=8 features=0x140000000 (PROTOCOL_FEATURES|VERSION_1)"));
    CHECK(s.trace_has("SET_PROTOCOL_FEATURES"));
    CHECK(s.trace_has("SHMEM"));
    CHECK(s.trace_has("-> SET_MEM_TABLE flags=0x9 NEED_REPLY size=40 fds=1 nregions=1 [gpa=0x0 size=0x100000"));
    CHECK(s.trace_has("<- GET_SHMEM_CONFIG reply flags=0x5 REPLY size=2056 nregions=1 shm0=0x40000"));
    CHECK(s.trace_has("<= SHMEM_MAP flags=0x9 NEED_REPLY size=40 fds=1 shmid=0 fd_offset=0x0 shm_offset=0x0 len=0x1000"));
    CHECK(s.trace_has("=> SHMEM_MAP reply flags=0x5 REPLY size=8 status=0x0"));
}

TEST_CASE("a back-end reply with the wrong size is traced as a spec violation and fails the call") {
    auto pair = socket_pair().value();
    Connection peer(std::move(pair.second));
    std::vector<std::string> trace;
    FrontendOptions options;
    options.timeout = Millis(500);
    options.trace = [&](std::string_view line) { trace.emplace_back(line); };
    Frontend frontend(Connection(std::move(pair.first)), options);
    REQUIRE(peer.send(1, kVersion | kFlagReply, std::vector<uint8_t>(4)).has_value());

    auto features = frontend.get_features();

    CHECK_FALSE(features.has_value());
    CHECK_FALSE(frontend.connected());
    CHECK(trace.back() == "vhost-user SPEC VIOLATION: back-end replied to GET_FEATURES with size 4, expected 8");
}

TEST_CASE("a reply to another request is an error, not a crash") {
    auto pair = socket_pair().value();
    Connection peer(std::move(pair.second));
    FrontendOptions options;
    options.timeout = Millis(500);
    Frontend frontend(Connection(std::move(pair.first)), options);
    REQUIRE(peer.send(11, kVersion | kFlagReply, bytes_of(VringState{})).has_value());
    CHECK_FALSE(frontend.get_features().has_value());
    CHECK_FALSE(frontend.get_features().has_value());
}

TEST_CASE("a silent back-end makes a call time out") {
    auto pair = socket_pair().value();
    FrontendOptions options;
    options.timeout = Millis(50);
    Frontend frontend(Connection(std::move(pair.first)), options);
    auto features = frontend.get_features();
    REQUIRE_FALSE(features.has_value());
    CHECK(features.error().code == ETIMEDOUT);
}

TEST_CASE("a GET_SHMEM_CONFIG reply with a size that is not a page multiple is refused") {
    auto pair = socket_pair().value();
    Connection peer(std::move(pair.second));
    FrontendOptions options;
    options.timeout = Millis(500);
    Frontend frontend(Connection(std::move(pair.first)), options);
    REQUIRE(peer.send(15, kVersion | kFlagReply, bytes_of(protocol_feature::kShmem)).has_value());
    VhostUserShMemConfig config{};
    config.nregions = 1;
    config.memory_sizes[0] = 100;
    REQUIRE(peer.send(44, kVersion | kFlagReply, bytes_of(config)).has_value());
    REQUIRE(frontend.get_protocol_features().has_value());
    REQUIRE(frontend.set_protocol_features(protocol_feature::kShmem).has_value());
    CHECK_FALSE(frontend.get_shmem_config().has_value());
}

TEST_CASE("protocol negotiation never acknowledges bit 21 as SHMEM") {
    auto pair = socket_pair().value();
    Connection peer(std::move(pair.second));
    FrontendOptions options;
    options.timeout = Millis(500);
    Frontend frontend(Connection(std::move(pair.first)), options);
    REQUIRE(peer.send(1, kVersion | kFlagReply, bytes_of(kFeatureProtocolFeatures)).has_value());
    REQUIRE(peer.send(15, kVersion | kFlagReply, bytes_of(protocol_feature::kGpaAddresses | protocol_feature::kReplyAck)).has_value());
    REQUIRE(frontend.get_features().has_value());

    auto agreed = frontend.negotiate_protocol_features();

    CHECK(agreed.value() == protocol_feature::kReplyAck);
    CHECK_FALSE(frontend.has(protocol_feature::kShmem));
}

TEST_CASE("a GET_SHMEM_CONFIG reply declaring more regions than Kite allows is refused") {
    auto pair = socket_pair().value();
    Connection peer(std::move(pair.second));
    FrontendOptions options;
    options.timeout = Millis(500);
    Frontend frontend(Connection(std::move(pair.first)), options);
    REQUIRE(peer.send(15, kVersion | kFlagReply, bytes_of(protocol_feature::kShmem)).has_value());
    VhostUserShMemConfig config{};
    config.nregions = 256;
    for (uint64_t& size : config.memory_sizes) size = kPage;
    REQUIRE(peer.send(44, kVersion | kFlagReply, bytes_of(config)).has_value());
    REQUIRE(frontend.get_protocol_features().has_value());
    REQUIRE(frontend.set_protocol_features(protocol_feature::kShmem).has_value());

    auto sizes = frontend.get_shmem_config();

    REQUIRE_FALSE(sizes.has_value());
    CHECK(sizes.error().message.find("256 shared memory regions") != std::string::npos);
}
