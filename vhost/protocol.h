// The vhost-user wire format (QEMU docs/interop/vhost-user.rst): message ids in both directions, the
// 12-byte header, payload structs with their exact sizes, protocol feature bits, and the validation of a
// received message against what its id requires. Everything here is pure: no sockets, no state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "base/error.h"
#include "base/fd.h"

namespace kite::vhost {

// Requests the front-end sends on the main socket.
enum class FrontendReq : uint32_t {
    GetFeatures = 1,
    SetFeatures = 2,
    SetOwner = 3,
    ResetOwner = 4,
    SetMemTable = 5,
    SetLogBase = 6,
    SetLogFd = 7,
    SetVringNum = 8,
    SetVringAddr = 9,
    SetVringBase = 10,
    GetVringBase = 11,
    SetVringKick = 12,
    SetVringCall = 13,
    SetVringErr = 14,
    GetProtocolFeatures = 15,
    SetProtocolFeatures = 16,
    GetQueueNum = 17,
    SetVringEnable = 18,
    SendRarp = 19,
    NetSetMtu = 20,
    SetBackendReqFd = 21,
    IotlbMsg = 22,
    SetVringEndian = 23,
    GetConfig = 24,
    SetConfig = 25,
    CreateCryptoSession = 26,
    CloseCryptoSession = 27,
    PostcopyAdvise = 28,
    PostcopyListen = 29,
    PostcopyEnd = 30,
    GetInflightFd = 31,
    SetInflightFd = 32,
    GpuSetSocket = 33,
    ResetDevice = 34,
    VringKick = 35,
    GetMaxMemSlots = 36,
    AddMemReg = 37,
    RemMemReg = 38,
    SetStatus = 39,
    GetStatus = 40,
    GetSharedObject = 41,
    SetDeviceStateFd = 42,
    CheckDeviceState = 43,
    GetShmemConfig = 44,
};

// Requests the back-end sends on the backend channel (SET_BACKEND_REQ_FD).
enum class BackendReq : uint32_t {
    IotlbMsg = 1,
    ConfigChangeMsg = 2,
    VringHostNotifierMsg = 3,
    VringCall = 4,
    VringErr = 5,
    SharedObjectAdd = 6,
    SharedObjectRemove = 7,
    SharedObjectLookup = 8,
    ShmemMap = 9,
    ShmemUnmap = 10,
};

// "GET_FEATURES", "SHMEM_MAP", ... or "UNKNOWN(<id>)".
std::string name(FrontendReq req);
std::string name(BackendReq req);
std::string frontend_req_name(uint32_t id);
std::string backend_req_name(uint32_t id);

// Virtio feature bit 30: the back-end supports GET/SET_PROTOCOL_FEATURES.
inline constexpr uint64_t kFeatureProtocolFeatures = 1ull << 30;

// Protocol feature bits. SHMEM is bit 22 and only here: drafts used bit 20 and a released crate used
// bit 21, which is now GPA_ADDRESSES; neither may be offered or acknowledged as SHMEM.
namespace protocol_feature {
inline constexpr uint64_t kMq = 1ull << 0;
inline constexpr uint64_t kLogShmfd = 1ull << 1;
inline constexpr uint64_t kRarp = 1ull << 2;
inline constexpr uint64_t kReplyAck = 1ull << 3;
inline constexpr uint64_t kMtu = 1ull << 4;
inline constexpr uint64_t kBackendReq = 1ull << 5;
inline constexpr uint64_t kCrossEndian = 1ull << 6;
inline constexpr uint64_t kCryptoSession = 1ull << 7;
inline constexpr uint64_t kPagefault = 1ull << 8;
inline constexpr uint64_t kConfig = 1ull << 9;
inline constexpr uint64_t kBackendSendFd = 1ull << 10;
inline constexpr uint64_t kHostNotifier = 1ull << 11;
inline constexpr uint64_t kInflightShmfd = 1ull << 12;
inline constexpr uint64_t kResetDevice = 1ull << 13;
inline constexpr uint64_t kInbandNotifications = 1ull << 14;
inline constexpr uint64_t kConfigureMemSlots = 1ull << 15;
inline constexpr uint64_t kStatus = 1ull << 16;
inline constexpr uint64_t kXenMmap = 1ull << 17;
inline constexpr uint64_t kSharedObject = 1ull << 18;
inline constexpr uint64_t kDeviceState = 1ull << 19;
inline constexpr uint64_t kGetVringBaseInflight = 1ull << 20;
inline constexpr uint64_t kGpaAddresses = 1ull << 21;
inline constexpr uint64_t kShmem = 1ull << 22;
}  // namespace protocol_feature

// "MQ|REPLY_ACK|SHMEM" (unknown bits as "bit<n>").
std::string protocol_feature_names(uint64_t bits);
// Common virtio feature names ("VERSION_1|PROTOCOL_FEATURES|bit3").
std::string virtio_feature_names(uint64_t bits);

inline constexpr uint32_t kVersion = 0x1;
inline constexpr uint32_t kVersionMask = 0x3;
inline constexpr uint32_t kFlagReply = 0x4;
inline constexpr uint32_t kFlagNeedReply = 0x8;
inline constexpr uint32_t kKnownFlags = kVersionMask | kFlagReply | kFlagNeedReply;

inline constexpr size_t kMaxFds = 8;
inline constexpr size_t kMaxMemRegions = 8;
inline constexpr size_t kMaxConfigSize = 256;
inline constexpr size_t kMaxShmRegions = 256;
// Larger than every payload this implementation knows (the largest is VhostUserShMemConfig).
inline constexpr uint32_t kMaxPayload = 4096;

// SET_VRING_KICK/CALL/ERR payload: bits 0-7 vring index, bit 8 "no fd, poll instead".
inline constexpr uint64_t kVringIndexMask = 0xff;
inline constexpr uint64_t kVringNoFd = 1ull << 8;

// VhostUserMMap.flags bit 0: map read-write (else read-only). Other bits must be zero.
inline constexpr uint64_t kShmemMapReadWrite = 1ull << 0;

struct Header {
    uint32_t request = 0;
    uint32_t flags = 0;
    uint32_t size = 0;
};
static_assert(sizeof(Header) == 12);

struct VringState {
    uint32_t index = 0;
    uint32_t num = 0;
};
static_assert(sizeof(VringState) == 8);

struct VringAddr {
    uint32_t index = 0;
    uint32_t flags = 0;
    uint64_t desc_user_addr = 0;
    uint64_t used_user_addr = 0;
    uint64_t avail_user_addr = 0;
    uint64_t log_guest_addr = 0;
};
static_assert(sizeof(VringAddr) == 40);

struct MemoryRegion {
    uint64_t guest_phys_addr = 0;
    uint64_t memory_size = 0;
    uint64_t userspace_addr = 0;
    uint64_t mmap_offset = 0;
};
static_assert(sizeof(MemoryRegion) == 32);

// SET_MEM_TABLE: on the wire only `nregions` regions follow the 8-byte head (as QEMU sends it).
struct MemoryTableHead {
    uint32_t nregions = 0;
    uint32_t padding = 0;
};
static_assert(sizeof(MemoryTableHead) == 8);
inline constexpr size_t kMemoryTableMaxSize = sizeof(MemoryTableHead) + kMaxMemRegions * sizeof(MemoryRegion);
static_assert(kMemoryTableMaxSize == 264);

// ADD_MEM_REG / REM_MEM_REG.
struct SingleMemoryRegion {
    uint64_t padding = 0;
    MemoryRegion region;
};
static_assert(sizeof(SingleMemoryRegion) == 40);

struct LogDescription {
    uint64_t size = 0;
    uint64_t offset = 0;
};
static_assert(sizeof(LogDescription) == 16);

struct IotlbMsg {
    uint64_t iova = 0;
    uint64_t size = 0;
    uint64_t uaddr = 0;
    uint8_t perm = 0;
    uint8_t type = 0;
    uint8_t padding[6] = {};
};
static_assert(sizeof(IotlbMsg) == 32);

// GET_CONFIG / SET_CONFIG: this head, then `size` bytes of config space.
struct ConfigHead {
    uint32_t offset = 0;
    uint32_t size = 0;
    uint32_t flags = 0;
};
static_assert(sizeof(ConfigHead) == 12);

struct VringArea {
    uint64_t u64 = 0;
    uint64_t size = 0;
    uint64_t offset = 0;
};
static_assert(sizeof(VringArea) == 24);

struct InflightDescription {
    uint64_t mmap_size = 0;
    uint64_t mmap_offset = 0;
    uint16_t num_queues = 0;
    uint16_t queue_size = 0;
    uint32_t padding = 0;
};
static_assert(sizeof(InflightDescription) == 24);

struct SharedObject {
    uint8_t uuid[16] = {};
};
static_assert(sizeof(SharedObject) == 16);

struct DeviceStateTransfer {
    uint32_t direction = 0;
    uint32_t phase = 0;
};
static_assert(sizeof(DeviceStateTransfer) == 8);

// SHMEM_MAP (with exactly one fd) and SHMEM_UNMAP (no fd).
struct VhostUserMMap {
    uint8_t shmid = 0;
    uint8_t padding[7] = {};
    uint64_t fd_offset = 0;
    uint64_t shm_offset = 0;
    uint64_t len = 0;
    uint64_t flags = 0;
};
static_assert(sizeof(VhostUserMMap) == 40);

// Reply to GET_SHMEM_CONFIG; index = shmid, size 0 = unused id.
struct VhostUserShMemConfig {
    uint32_t nregions = 0;
    uint32_t padding = 0;
    uint64_t memory_sizes[kMaxShmRegions] = {};
};
static_assert(sizeof(VhostUserShMemConfig) == 2056);

static_assert(std::is_trivially_copyable_v<VhostUserShMemConfig> && std::is_trivially_copyable_v<VringAddr>);

// One received message: header, payload of exactly header.size bytes, and the fds that came with it
// (owned from the moment they were received).
struct Message {
    Header header;
    std::vector<uint8_t> payload;
    std::vector<UniqueFd> fds;

    bool need_reply() const { return (header.flags & kFlagNeedReply) != 0; }
    bool is_reply() const { return (header.flags & kFlagReply) != 0; }
};

// The payload as T when it is exactly sizeof(T) bytes, else nullopt.
template <class T>
std::optional<T> payload_as(std::span<const uint8_t> payload) {
    static_assert(std::is_trivially_copyable_v<T>);
    if (payload.size() != sizeof(T)) return std::nullopt;
    T value;
    std::memcpy(&value, payload.data(), sizeof(T));
    return value;
}

template <class T>
std::vector<uint8_t> bytes_of(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    auto p = reinterpret_cast<const uint8_t*>(&value);
    return std::vector<uint8_t>(p, p + sizeof(T));
}

// Splits a complete message buffer (header + payload) into a Message; the size field must match the
// buffer exactly and stay within kMaxPayload. The fds are taken over (closed on error).
Result<Message> parse_message(std::span<const uint8_t> bytes, std::vector<UniqueFd> fds);

// Header + payload as one buffer, ready to send.
std::vector<uint8_t> encode_message(uint32_t request, uint32_t flags, std::span<const uint8_t> payload);

// Memory table encoding (only `regions.size()` regions on the wire) and decoding (nregions in range,
// size exactly matching nregions).
std::vector<uint8_t> encode_memory_table(std::span<const MemoryRegion> regions);
Result<std::vector<MemoryRegion>> decode_memory_table(std::span<const uint8_t> payload);

// GET_CONFIG / SET_CONFIG payload: head plus data; decoding checks size <= kMaxConfigSize and that the
// payload length is exactly head + size.
std::vector<uint8_t> encode_config(uint32_t offset, uint32_t flags, std::span<const uint8_t> data);
struct ConfigPayload {
    ConfigHead head;
    std::vector<uint8_t> data;
};
Result<ConfigPayload> decode_config(std::span<const uint8_t> payload);

// Validation of the flags field: version 1, no unknown bits; `reply` says whether REPLY must be set
// (and NEED_REPLY clear) or clear.
Result<void> check_flags(uint32_t flags, bool reply);

// Validates a request the back-end received from the front-end: flags, payload size exactly as the id
// requires, fd count, counts in range. Unknown ids are errors.
Result<void> validate_frontend_request(const Message& msg);

// Validates a reply to `sent` as the front-end receives it: request id matches, REPLY set, payload
// size as `sent` requires (`expected_config_size` for GET_CONFIG). Error messages read
// "back-end replied to GET_FEATURES with size 4, expected 8" so the trace can call them violations.
Result<void> validate_reply(FrontendReq sent, const Message& reply, uint32_t expected_config_size = 0);

// Validates the header, size and fd count of a backend-channel request (ids 1-10).
Result<void> validate_backend_request(const Message& msg);

// A u64 reply to a backend-channel request with NEED_REPLY, as the back-end receives it.
Result<uint64_t> validate_backend_reply(BackendReq sent, const Message& reply);

}  // namespace kite::vhost
