#include "vhost/protocol.h"

#include <array>
#include <fmt/format.h>

namespace kite::vhost {

namespace {

constexpr std::array<std::string_view, 45> kFrontendNames = {
    "NONE",
    "GET_FEATURES",
    "SET_FEATURES",
    "SET_OWNER",
    "RESET_OWNER",
    "SET_MEM_TABLE",
    "SET_LOG_BASE",
    "SET_LOG_FD",
    "SET_VRING_NUM",
    "SET_VRING_ADDR",
    "SET_VRING_BASE",
    "GET_VRING_BASE",
    "SET_VRING_KICK",
    "SET_VRING_CALL",
    "SET_VRING_ERR",
    "GET_PROTOCOL_FEATURES",
    "SET_PROTOCOL_FEATURES",
    "GET_QUEUE_NUM",
    "SET_VRING_ENABLE",
    "SEND_RARP",
    "NET_SET_MTU",
    "SET_BACKEND_REQ_FD",
    "IOTLB_MSG",
    "SET_VRING_ENDIAN",
    "GET_CONFIG",
    "SET_CONFIG",
    "CREATE_CRYPTO_SESSION",
    "CLOSE_CRYPTO_SESSION",
    "POSTCOPY_ADVISE",
    "POSTCOPY_LISTEN",
    "POSTCOPY_END",
    "GET_INFLIGHT_FD",
    "SET_INFLIGHT_FD",
    "GPU_SET_SOCKET",
    "RESET_DEVICE",
    "VRING_KICK",
    "GET_MAX_MEM_SLOTS",
    "ADD_MEM_REG",
    "REM_MEM_REG",
    "SET_STATUS",
    "GET_STATUS",
    "GET_SHARED_OBJECT",
    "SET_DEVICE_STATE_FD",
    "CHECK_DEVICE_STATE",
    "GET_SHMEM_CONFIG",
};

constexpr std::array<std::string_view, 11> kBackendNames = {
    "NONE",
    "IOTLB_MSG",
    "CONFIG_CHANGE_MSG",
    "VRING_HOST_NOTIFIER_MSG",
    "VRING_CALL",
    "VRING_ERR",
    "SHARED_OBJECT_ADD",
    "SHARED_OBJECT_REMOVE",
    "SHARED_OBJECT_LOOKUP",
    "SHMEM_MAP",
    "SHMEM_UNMAP",
};

constexpr std::array<std::string_view, 23> kProtocolFeatureNames = {
    "MQ",           "LOG_SHMFD",      "RARP",          "REPLY_ACK",      "MTU",
    "BACKEND_REQ",  "CROSS_ENDIAN",   "CRYPTO_SESSION", "PAGEFAULT",     "CONFIG",
    "BACKEND_SEND_FD", "HOST_NOTIFIER", "INFLIGHT_SHMFD", "RESET_DEVICE", "INBAND_NOTIFICATIONS",
    "CONFIGURE_MEM_SLOTS", "STATUS",  "XEN_MMAP",      "SHARED_OBJECT",  "DEVICE_STATE",
    "GET_VRING_BASE_INFLIGHT", "GPA_ADDRESSES", "SHMEM",
};

std::string bit_names(uint64_t bits, auto&& name_of) {
    std::string out;
    for (int bit = 0; bit < 64; ++bit) {
        if ((bits & (1ull << bit)) == 0) continue;
        if (!out.empty()) out += '|';
        std::string_view known = name_of(bit);
        out += known.empty() ? fmt::format("bit{}", bit) : std::string(known);
    }
    return out.empty() ? "none" : out;
}

// What a payload must look like: `size` bytes (or any size accepted by a custom check), between
// `min_fds` and `max_fds` fds.
struct Shape {
    uint32_t size = 0;
    size_t min_fds = 0;
    size_t max_fds = 0;
};

std::optional<Shape> frontend_request_shape(FrontendReq req) {
    using R = FrontendReq;
    switch (req) {
    case R::GetFeatures:
    case R::SetOwner:
    case R::ResetOwner:
    case R::GetProtocolFeatures:
    case R::GetQueueNum:
    case R::ResetDevice:
    case R::GetMaxMemSlots:
    case R::GetStatus:
    case R::CheckDeviceState:
    case R::GetShmemConfig:
    case R::PostcopyAdvise:
    case R::PostcopyListen:
    case R::PostcopyEnd:
        return Shape{0, 0, 0};
    case R::SetFeatures:
    case R::SetProtocolFeatures:
    case R::SetStatus:
    case R::SendRarp:
    case R::NetSetMtu:
    case R::CloseCryptoSession:
        return Shape{8, 0, 0};
    case R::SetVringNum:
    case R::SetVringBase:
    case R::GetVringBase:
    case R::SetVringEnable:
    case R::SetVringEndian:
    case R::VringKick:
        return Shape{sizeof(VringState), 0, 0};
    case R::SetVringAddr:
        return Shape{sizeof(VringAddr), 0, 0};
    case R::SetVringKick:
    case R::SetVringCall:
    case R::SetVringErr:
        return Shape{8, 0, 1};
    case R::SetLogBase:
        return Shape{sizeof(LogDescription), 1, 1};
    case R::SetLogFd:
    case R::SetBackendReqFd:
    case R::GpuSetSocket:
        return Shape{0, 1, 1};
    case R::IotlbMsg:
        return Shape{sizeof(IotlbMsg), 0, 0};
    case R::GetInflightFd:
        return Shape{sizeof(InflightDescription), 0, 0};
    case R::SetInflightFd:
        return Shape{sizeof(InflightDescription), 1, 1};
    case R::AddMemReg:
        return Shape{sizeof(SingleMemoryRegion), 1, 1};
    case R::RemMemReg:
        // The spec lets a back-end accept (and close) one fd for compatibility.
        return Shape{sizeof(SingleMemoryRegion), 0, 1};
    case R::GetSharedObject:
        return Shape{sizeof(SharedObject), 0, 0};
    case R::SetDeviceStateFd:
        return Shape{sizeof(DeviceStateTransfer), 1, 1};
    case R::SetMemTable:
    case R::GetConfig:
    case R::SetConfig:
    case R::CreateCryptoSession:
        return std::nullopt;  // variable size, checked separately (or unsupported)
    }
    return std::nullopt;
}

Result<void> check_fds(std::string_view what, size_t have, size_t min, size_t max) {
    if (have < min || have > max)
        return fail(fmt::format("{} carries {} fds, expected {}{}", what, have, min,
                                min == max ? std::string() : fmt::format("..{}", max)));
    return {};
}

}  // namespace

std::string frontend_req_name(uint32_t id) {
    if (id > 0 && id < kFrontendNames.size()) return std::string(kFrontendNames[id]);
    return fmt::format("UNKNOWN({})", id);
}

std::string backend_req_name(uint32_t id) {
    if (id > 0 && id < kBackendNames.size()) return std::string(kBackendNames[id]);
    return fmt::format("UNKNOWN({})", id);
}

std::string name(FrontendReq req) { return frontend_req_name(static_cast<uint32_t>(req)); }
std::string name(BackendReq req) { return backend_req_name(static_cast<uint32_t>(req)); }

std::string protocol_feature_names(uint64_t bits) {
    return bit_names(bits, [](int bit) -> std::string_view {
        return bit < static_cast<int>(kProtocolFeatureNames.size()) ? kProtocolFeatureNames[bit] : "";
    });
}

std::string virtio_feature_names(uint64_t bits) {
    return bit_names(bits, [](int bit) -> std::string_view {
        switch (bit) {
        case 28: return "RING_INDIRECT_DESC";
        case 29: return "RING_EVENT_IDX";
        case 30: return "PROTOCOL_FEATURES";
        case 32: return "VERSION_1";
        case 33: return "ACCESS_PLATFORM";
        case 34: return "RING_PACKED";
        case 35: return "IN_ORDER";
        case 36: return "ORDER_PLATFORM";
        case 37: return "SR_IOV";
        case 38: return "NOTIFICATION_DATA";
        case 39: return "NOTIF_CONFIG_DATA";
        case 40: return "RING_RESET";
        default: return "";
        }
    });
}

Result<Message> parse_message(std::span<const uint8_t> bytes, std::vector<UniqueFd> fds) {
    if (bytes.size() < sizeof(Header)) return fail(fmt::format("message of {} bytes is shorter than the header", bytes.size()));
    if (fds.size() > kMaxFds) return fail(fmt::format("message carries {} fds, at most {} allowed", fds.size(), kMaxFds));
    Message msg;
    std::memcpy(&msg.header, bytes.data(), sizeof(Header));
    if (msg.header.size > kMaxPayload)
        return fail(fmt::format("payload size {} exceeds the maximum {}", msg.header.size, kMaxPayload));
    if (bytes.size() - sizeof(Header) != msg.header.size)
        return fail(fmt::format("header says {} payload bytes, message has {}", msg.header.size,
                                bytes.size() - sizeof(Header)));
    msg.payload.assign(bytes.begin() + sizeof(Header), bytes.end());
    msg.fds = std::move(fds);
    return msg;
}

std::vector<uint8_t> encode_message(uint32_t request, uint32_t flags, std::span<const uint8_t> payload) {
    Header header{request, flags, static_cast<uint32_t>(payload.size())};
    std::vector<uint8_t> out = bytes_of(header);
    out.insert(out.end(), payload.begin(), payload.end());
    return out;
}

std::vector<uint8_t> encode_memory_table(std::span<const MemoryRegion> regions) {
    MemoryTableHead head{static_cast<uint32_t>(regions.size()), 0};
    std::vector<uint8_t> out = bytes_of(head);
    for (const auto& region : regions) {
        auto bytes = bytes_of(region);
        out.insert(out.end(), bytes.begin(), bytes.end());
    }
    return out;
}

Result<std::vector<MemoryRegion>> decode_memory_table(std::span<const uint8_t> payload) {
    if (payload.size() < sizeof(MemoryTableHead))
        return fail(fmt::format("memory table of {} bytes is shorter than its head", payload.size()));
    MemoryTableHead head;
    std::memcpy(&head, payload.data(), sizeof(head));
    if (head.nregions > kMaxMemRegions)
        return fail(fmt::format("memory table has {} regions, at most {} allowed", head.nregions, kMaxMemRegions));
    size_t expected = sizeof(MemoryTableHead) + head.nregions * sizeof(MemoryRegion);
    if (payload.size() != expected)
        return fail(fmt::format("memory table with {} regions has size {}, expected {}", head.nregions,
                                payload.size(), expected));
    std::vector<MemoryRegion> regions(head.nregions);
    // An empty table leaves regions.data() null, which memcpy must not get even for 0 bytes.
    if (!regions.empty()) std::memcpy(regions.data(), payload.data() + sizeof(head), head.nregions * sizeof(MemoryRegion));
    return regions;
}

std::vector<uint8_t> encode_config(uint32_t offset, uint32_t flags, std::span<const uint8_t> data) {
    ConfigHead head{offset, static_cast<uint32_t>(data.size()), flags};
    std::vector<uint8_t> out = bytes_of(head);
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

Result<ConfigPayload> decode_config(std::span<const uint8_t> payload) {
    if (payload.size() < sizeof(ConfigHead))
        return fail(fmt::format("config payload of {} bytes is shorter than its head", payload.size()));
    ConfigPayload out;
    std::memcpy(&out.head, payload.data(), sizeof(ConfigHead));
    if (out.head.size > kMaxConfigSize)
        return fail(fmt::format("config size {} exceeds the maximum {}", out.head.size, kMaxConfigSize));
    if (payload.size() != sizeof(ConfigHead) + out.head.size)
        return fail(fmt::format("config payload of {} bytes does not match its size field {}", payload.size(),
                                out.head.size));
    uint64_t end = uint64_t{out.head.offset} + out.head.size;
    if (end > kMaxConfigSize) return fail(fmt::format("config range ends at {}, beyond {}", end, kMaxConfigSize));
    out.data.assign(payload.begin() + sizeof(ConfigHead), payload.end());
    return out;
}

Result<void> check_flags(uint32_t flags, bool reply) {
    if ((flags & kVersionMask) != kVersion) return fail(fmt::format("flags 0x{:x}: version is not 1", flags));
    if ((flags & ~kKnownFlags) != 0) return fail(fmt::format("flags 0x{:x}: unknown bits set", flags));
    if (reply && (flags & kFlagReply) == 0) return fail(fmt::format("flags 0x{:x}: REPLY bit missing", flags));
    if (reply && (flags & kFlagNeedReply) != 0) return fail(fmt::format("flags 0x{:x}: NEED_REPLY on a reply", flags));
    if (!reply && (flags & kFlagReply) != 0) return fail(fmt::format("flags 0x{:x}: REPLY bit on a request", flags));
    return {};
}

Result<void> validate_frontend_request(const Message& msg) {
    std::string what = frontend_req_name(msg.header.request);
    if (auto ok = check_flags(msg.header.flags, false); !ok) return fail(what + ": " + ok.error().message);
    if (msg.payload.size() != msg.header.size) return fail(what + ": payload length does not match the header");
    auto req = static_cast<FrontendReq>(msg.header.request);
    if (req == FrontendReq::SetMemTable) {
        auto regions = decode_memory_table(msg.payload);
        if (!regions) return fail(what + ": " + regions.error().message);
        return check_fds(what, msg.fds.size(), regions->size(), regions->size());
    }
    if (req == FrontendReq::GetConfig || req == FrontendReq::SetConfig) {
        auto config = decode_config(msg.payload);
        if (!config) return fail(what + ": " + config.error().message);
        return check_fds(what, msg.fds.size(), 0, 0);
    }
    auto shape = frontend_request_shape(req);
    if (!shape) return fail(fmt::format("{}: request not supported", what));
    if (msg.header.size != shape->size)
        return fail(fmt::format("{} with size {}, expected {}", what, msg.header.size, shape->size));
    if (req == FrontendReq::SetVringKick || req == FrontendReq::SetVringCall || req == FrontendReq::SetVringErr) {
        auto value = *payload_as<uint64_t>(msg.payload);
        if ((value & ~(kVringIndexMask | kVringNoFd)) != 0)
            return fail(fmt::format("{}: unknown bits in 0x{:x}", what, value));
        size_t fds = (value & kVringNoFd) ? 0 : 1;
        return check_fds(what, msg.fds.size(), fds, fds);
    }
    return check_fds(what, msg.fds.size(), shape->min_fds, shape->max_fds);
}

Result<void> validate_reply(FrontendReq sent, const Message& reply, uint32_t expected_config_size) {
    std::string what = name(sent);
    if (reply.header.request != static_cast<uint32_t>(sent))
        return fail(fmt::format("back-end replied with {} to {}", frontend_req_name(reply.header.request), what));
    if (auto ok = check_flags(reply.header.flags, true); !ok)
        return fail(fmt::format("back-end reply to {} has bad {}", what, ok.error().message));
    if (reply.payload.size() != reply.header.size)
        return fail(fmt::format("back-end reply to {}: payload length does not match the header", what));
    uint32_t expected = 8;
    size_t min_fds = 0, max_fds = 0;
    switch (sent) {
    case FrontendReq::GetVringBase: expected = sizeof(VringState); break;
    case FrontendReq::GetShmemConfig: expected = sizeof(VhostUserShMemConfig); break;
    case FrontendReq::GetInflightFd:
        expected = sizeof(InflightDescription);
        min_fds = max_fds = 1;
        break;
    case FrontendReq::GetConfig:
        // A zero-length reply is how the back-end reports failure.
        if (reply.header.size == 0) return fail("back-end reported failure of GET_CONFIG (empty reply)");
        expected = static_cast<uint32_t>(sizeof(ConfigHead)) + expected_config_size;
        break;
    default: break;  // u64: a value or a REPLY_ACK status
    }
    if (reply.header.size != expected)
        return fail(fmt::format("back-end replied to {} with size {}, expected {}", what, reply.header.size, expected));
    if (reply.fds.size() < min_fds || reply.fds.size() > max_fds)
        return fail(fmt::format("back-end replied to {} with {} fds, expected {}", what, reply.fds.size(), min_fds));
    return {};
}

Result<void> validate_backend_request(const Message& msg) {
    std::string what = backend_req_name(msg.header.request);
    if (auto ok = check_flags(msg.header.flags, false); !ok) return fail(what + ": " + ok.error().message);
    if (msg.payload.size() != msg.header.size) return fail(what + ": payload length does not match the header");
    uint32_t expected = 0;
    size_t max_fds = 0;
    switch (static_cast<BackendReq>(msg.header.request)) {
    case BackendReq::IotlbMsg: expected = sizeof(IotlbMsg); break;
    case BackendReq::ConfigChangeMsg: expected = 0; break;
    case BackendReq::VringHostNotifierMsg: expected = sizeof(VringArea), max_fds = 1; break;
    case BackendReq::VringCall:
    case BackendReq::VringErr: expected = sizeof(VringState); break;
    case BackendReq::SharedObjectAdd:
    case BackendReq::SharedObjectRemove:
    case BackendReq::SharedObjectLookup: expected = sizeof(SharedObject); break;
    // The fd count of SHMEM_MAP/UNMAP is a refusal rule checked with the mapping, so a wrong count gets
    // the same error reply as every other bad mapping request.
    case BackendReq::ShmemMap:
    case BackendReq::ShmemUnmap: expected = sizeof(VhostUserMMap), max_fds = kMaxFds; break;
    default: return fail(fmt::format("{}: request not supported", what));
    }
    if (msg.header.size != expected) return fail(fmt::format("{} with size {}, expected {}", what, msg.header.size, expected));
    if (msg.fds.size() > max_fds) return fail(fmt::format("{} carries {} fds, at most {} expected", what, msg.fds.size(), max_fds));
    return {};
}

Result<uint64_t> validate_backend_reply(BackendReq sent, const Message& reply) {
    std::string what = name(sent);
    if (reply.header.request != static_cast<uint32_t>(sent))
        return fail(fmt::format("front-end replied with {} to {}", backend_req_name(reply.header.request), what));
    if (auto ok = check_flags(reply.header.flags, true); !ok)
        return fail(fmt::format("front-end reply to {} has bad {}", what, ok.error().message));
    auto value = payload_as<uint64_t>(reply.payload);
    if (!value || reply.header.size != 8)
        return fail(fmt::format("front-end replied to {} with size {}, expected 8", what, reply.header.size));
    if (!reply.fds.empty()) return fail(fmt::format("front-end reply to {} carries fds", what));
    return *value;
}

}  // namespace kite::vhost
