#include <doctest/doctest.h>

#include <string>

#include "tests/unit/vhost/test_util.h"
#include "vhost/protocol.h"

using namespace kite;
using namespace kite::vhost;

namespace {

Message make_msg(uint32_t request, uint32_t flags, std::vector<uint8_t> payload, size_t nfds = 0) {
    Message msg;
    msg.header = Header{request, flags, static_cast<uint32_t>(payload.size())};
    msg.payload = std::move(payload);
    for (size_t i = 0; i < nfds; ++i) msg.fds.push_back(test::make_eventfd());
    return msg;
}

struct Case {
    FrontendReq req;
    size_t size;
    size_t fds;
};

// Every front-end request with a fixed payload, with its correct size and fd count.
const Case kFixedRequests[] = {
    {FrontendReq::GetFeatures, 0, 0},        {FrontendReq::SetFeatures, 8, 0},
    {FrontendReq::SetOwner, 0, 0},           {FrontendReq::ResetOwner, 0, 0},
    {FrontendReq::SetLogBase, 16, 1},        {FrontendReq::SetLogFd, 0, 1},
    {FrontendReq::SetVringNum, 8, 0},        {FrontendReq::SetVringAddr, 40, 0},
    {FrontendReq::SetVringBase, 8, 0},       {FrontendReq::GetVringBase, 8, 0},
    {FrontendReq::GetProtocolFeatures, 0, 0}, {FrontendReq::SetProtocolFeatures, 8, 0},
    {FrontendReq::GetQueueNum, 0, 0},        {FrontendReq::SetVringEnable, 8, 0},
    {FrontendReq::SetBackendReqFd, 0, 1},    {FrontendReq::IotlbMsg, 32, 0},
    {FrontendReq::GetInflightFd, 24, 0},     {FrontendReq::SetInflightFd, 24, 1},
    {FrontendReq::ResetDevice, 0, 0},        {FrontendReq::GetMaxMemSlots, 0, 0},
    {FrontendReq::AddMemReg, 40, 1},         {FrontendReq::RemMemReg, 40, 0},
    {FrontendReq::SetStatus, 8, 0},          {FrontendReq::GetStatus, 0, 0},
    {FrontendReq::SetDeviceStateFd, 8, 1},   {FrontendReq::CheckDeviceState, 0, 0},
    {FrontendReq::GetShmemConfig, 0, 0},
};

}  // namespace

TEST_CASE("payload structs have the sizes of the spec") {
    CHECK(sizeof(Header) == 12);
    CHECK(sizeof(VhostUserMMap) == 40);
    CHECK(sizeof(VhostUserShMemConfig) == 2056);
    CHECK(sizeof(VringAddr) == 40);
    CHECK(sizeof(SingleMemoryRegion) == 40);
    CHECK(sizeof(InflightDescription) == 24);
    CHECK(kMemoryTableMaxSize == 264);
}

TEST_CASE("SHMEM is protocol feature bit 22 and bit 21 is GPA_ADDRESSES") {
    CHECK(protocol_feature::kShmem == (1ull << 22));
    CHECK(protocol_feature_names(1ull << 22) == "SHMEM");
    CHECK(protocol_feature_names(1ull << 21) == "GPA_ADDRESSES");
    CHECK(protocol_feature_names(protocol_feature::kMq | protocol_feature::kReplyAck) == "MQ|REPLY_ACK");
    CHECK(protocol_feature_names(1ull << 40) == "bit40");
}

TEST_CASE("request ids have their spec names") {
    CHECK(name(FrontendReq::GetShmemConfig) == "GET_SHMEM_CONFIG");
    CHECK(name(FrontendReq::SetBackendReqFd) == "SET_BACKEND_REQ_FD");
    CHECK(name(BackendReq::ShmemMap) == "SHMEM_MAP");
    CHECK(name(BackendReq::ShmemUnmap) == "SHMEM_UNMAP");
    CHECK(frontend_req_name(45) == "UNKNOWN(45)");
    CHECK(backend_req_name(0) == "UNKNOWN(0)");
}

TEST_CASE("virtio feature names include VERSION_1 and PROTOCOL_FEATURES") {
    CHECK(virtio_feature_names((1ull << 32) | kFeatureProtocolFeatures | 2) == "bit1|PROTOCOL_FEATURES|VERSION_1");
}

TEST_CASE("parse_message splits header and payload and keeps the fds") {
    auto bytes = encode_message(1, kVersion, bytes_of(uint64_t{0x1234}));
    std::vector<UniqueFd> fds;
    fds.push_back(test::make_eventfd());

    auto msg = parse_message(bytes, std::move(fds));

    REQUIRE(msg.has_value());
    CHECK(msg->header.request == 1);
    CHECK(msg->header.size == 8);
    CHECK(*payload_as<uint64_t>(msg->payload) == 0x1234);
    CHECK(msg->fds.size() == 1);
}

TEST_CASE("parse_message rejects a size field that does not match the buffer") {
    auto bytes = encode_message(1, kVersion, bytes_of(uint64_t{0}));
    bytes.pop_back();
    CHECK_FALSE(parse_message(bytes, {}).has_value());
}

TEST_CASE("parse_message rejects a buffer shorter than the header") {
    std::vector<uint8_t> bytes(11);
    CHECK_FALSE(parse_message(bytes, {}).has_value());
}

TEST_CASE("parse_message rejects a payload above the maximum") {
    std::vector<uint8_t> payload(kMaxPayload + 1);
    CHECK_FALSE(parse_message(encode_message(5, kVersion, payload), {}).has_value());
}

TEST_CASE("parse_message closes the fds of a rejected message") {
    size_t before = test::count_open_fds();
    std::vector<UniqueFd> fds;
    fds.push_back(test::make_eventfd());
    fds.push_back(test::make_eventfd());
    std::vector<uint8_t> bytes(3);

    auto msg = parse_message(bytes, std::move(fds));

    CHECK_FALSE(msg.has_value());
    CHECK(test::count_open_fds() == before);
}

TEST_CASE("a memory table round-trips with only nregions regions on the wire") {
    std::vector<MemoryRegion> regions = {{0, 0x10000, 0x7f0000000000, 0}, {0x100000000, 0x20000, 0x7f1000000000, 0x10000}};

    auto payload = encode_memory_table(regions);
    auto decoded = decode_memory_table(payload);

    CHECK(payload.size() == 8 + 2 * 32);
    REQUIRE(decoded.has_value());
    CHECK(decoded->size() == 2);
    CHECK((*decoded)[1].guest_phys_addr == 0x100000000);
    CHECK((*decoded)[1].mmap_offset == 0x10000);
}

TEST_CASE("a memory table with more than 8 regions is rejected") {
    auto payload = encode_memory_table(std::vector<MemoryRegion>(9));
    CHECK_FALSE(decode_memory_table(payload).has_value());
}

TEST_CASE("a memory table whose size does not match nregions is rejected") {
    auto payload = encode_memory_table(std::vector<MemoryRegion>(2));
    payload.resize(payload.size() + 32);
    CHECK_FALSE(decode_memory_table(payload).has_value());
}

TEST_CASE("a config payload round-trips") {
    std::vector<uint8_t> data = {1, 2, 3, 4};
    auto decoded = decode_config(encode_config(8, 0, data));
    REQUIRE(decoded.has_value());
    CHECK(decoded->head.offset == 8);
    CHECK(decoded->data == data);
}

TEST_CASE("a config payload beyond 256 bytes of config space is rejected") {
    std::vector<uint8_t> data(16);
    CHECK_FALSE(decode_config(encode_config(250, 0, data)).has_value());
    CHECK_FALSE(decode_config(encode_config(0, 0, std::vector<uint8_t>(257))).has_value());
}

TEST_CASE("flags must carry version 1 and no unknown bits") {
    CHECK(check_flags(kVersion, false).has_value());
    CHECK(check_flags(kVersion | kFlagNeedReply, false).has_value());
    CHECK_FALSE(check_flags(0, false).has_value());
    CHECK_FALSE(check_flags(kVersion | 0x10, false).has_value());
    CHECK_FALSE(check_flags(kVersion | kFlagReply, false).has_value());
    CHECK_FALSE(check_flags(kVersion, true).has_value());
    CHECK_FALSE(check_flags(kVersion | kFlagReply | kFlagNeedReply, true).has_value());
}

TEST_CASE("every fixed-size front-end request validates with its exact size and fds") {
    for (const auto& c : kFixedRequests) {
        CAPTURE(name(c.req));
        auto good = make_msg(static_cast<uint32_t>(c.req), kVersion, std::vector<uint8_t>(c.size), c.fds);
        auto longer = make_msg(static_cast<uint32_t>(c.req), kVersion, std::vector<uint8_t>(c.size + 4), c.fds);
        auto extra_fd = make_msg(static_cast<uint32_t>(c.req), kVersion, std::vector<uint8_t>(c.size), c.fds + 2);
        CHECK(validate_frontend_request(good).has_value());
        CHECK_FALSE(validate_frontend_request(longer).has_value());
        CHECK_FALSE(validate_frontend_request(extra_fd).has_value());
    }
}

TEST_CASE("SET_MEM_TABLE needs one fd per region") {
    auto payload = encode_memory_table(std::vector<MemoryRegion>(2));
    CHECK(validate_frontend_request(make_msg(5, kVersion, payload, 2)).has_value());
    CHECK_FALSE(validate_frontend_request(make_msg(5, kVersion, payload, 1)).has_value());
}

TEST_CASE("SET_VRING_KICK carries an fd unless the no-fd bit is set") {
    CHECK(validate_frontend_request(make_msg(12, kVersion, bytes_of(uint64_t{3}), 1)).has_value());
    CHECK(validate_frontend_request(make_msg(12, kVersion, bytes_of(uint64_t{3} | kVringNoFd), 0)).has_value());
    CHECK_FALSE(validate_frontend_request(make_msg(12, kVersion, bytes_of(uint64_t{3} | kVringNoFd), 1)).has_value());
    CHECK_FALSE(validate_frontend_request(make_msg(12, kVersion, bytes_of(uint64_t{3}), 0)).has_value());
    CHECK_FALSE(validate_frontend_request(make_msg(12, kVersion, bytes_of(uint64_t{1} << 9), 1)).has_value());
}

TEST_CASE("GET_CONFIG and SET_CONFIG validate their variable payload") {
    auto config = encode_config(0, 0, std::vector<uint8_t>(60));
    auto truncated = config;
    truncated.pop_back();
    CHECK(validate_frontend_request(make_msg(24, kVersion, config)).has_value());
    CHECK(validate_frontend_request(make_msg(25, kVersion, config)).has_value());
    CHECK_FALSE(validate_frontend_request(make_msg(25, kVersion, truncated)).has_value());
}

TEST_CASE("unknown front-end request ids are rejected") {
    CHECK_FALSE(validate_frontend_request(make_msg(45, kVersion, {})).has_value());
    CHECK_FALSE(validate_frontend_request(make_msg(0, kVersion, {})).has_value());
}

TEST_CASE("a reply with the wrong size is a spec violation naming request and sizes") {
    auto reply = make_msg(1, kVersion | kFlagReply, std::vector<uint8_t>(4));
    auto result = validate_reply(FrontendReq::GetFeatures, reply);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().message == "back-end replied to GET_FEATURES with size 4, expected 8");
}

TEST_CASE("a reply to another request id is rejected") {
    auto reply = make_msg(15, kVersion | kFlagReply, bytes_of(uint64_t{0}));
    CHECK_FALSE(validate_reply(FrontendReq::GetFeatures, reply).has_value());
}

TEST_CASE("a reply without the REPLY flag is rejected") {
    auto reply = make_msg(1, kVersion, bytes_of(uint64_t{0}));
    CHECK_FALSE(validate_reply(FrontendReq::GetFeatures, reply).has_value());
}

TEST_CASE("replies with their own payloads validate at their sizes") {
    CHECK(validate_reply(FrontendReq::GetVringBase, make_msg(11, kVersion | kFlagReply, bytes_of(VringState{}))).has_value());
    CHECK(validate_reply(FrontendReq::GetShmemConfig, make_msg(44, kVersion | kFlagReply, bytes_of(VhostUserShMemConfig{})))
              .has_value());
    CHECK(validate_reply(FrontendReq::GetInflightFd, make_msg(31, kVersion | kFlagReply, bytes_of(InflightDescription{}), 1))
              .has_value());
    CHECK_FALSE(validate_reply(FrontendReq::GetInflightFd, make_msg(31, kVersion | kFlagReply, bytes_of(InflightDescription{})))
                    .has_value());
    CHECK(validate_reply(FrontendReq::GetConfig, make_msg(24, kVersion | kFlagReply, encode_config(0, 0, std::vector<uint8_t>(8))), 8)
              .has_value());
    CHECK_FALSE(validate_reply(FrontendReq::GetConfig, make_msg(24, kVersion | kFlagReply, {}), 8).has_value());
}

TEST_CASE("backend-channel requests validate their sizes") {
    CHECK(validate_backend_request(make_msg(9, kVersion | kFlagNeedReply, bytes_of(VhostUserMMap{}), 1)).has_value());
    CHECK(validate_backend_request(make_msg(10, kVersion, bytes_of(VhostUserMMap{}))).has_value());
    CHECK(validate_backend_request(make_msg(2, kVersion, {})).has_value());
    CHECK_FALSE(validate_backend_request(make_msg(9, kVersion, std::vector<uint8_t>(39), 1)).has_value());
    CHECK_FALSE(validate_backend_request(make_msg(2, kVersion, std::vector<uint8_t>(8))).has_value());
    CHECK_FALSE(validate_backend_request(make_msg(11, kVersion, {})).has_value());
    CHECK_FALSE(validate_backend_request(make_msg(9, kVersion | kFlagReply, bytes_of(VhostUserMMap{}), 1)).has_value());
}

TEST_CASE("a backend-channel reply yields its u64 status") {
    auto ok = validate_backend_reply(BackendReq::ShmemMap, make_msg(9, kVersion | kFlagReply, bytes_of(uint64_t{0})));
    auto err = validate_backend_reply(BackendReq::ShmemMap, make_msg(9, kVersion | kFlagReply, bytes_of(uint64_t{1})));
    auto wrong = validate_backend_reply(BackendReq::ShmemMap, make_msg(10, kVersion | kFlagReply, bytes_of(uint64_t{0})));
    CHECK(*ok == 0);
    CHECK(*err == 1);
    CHECK_FALSE(wrong.has_value());
}
