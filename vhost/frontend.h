// The front-end side of one vhost-user connection (the VMM talking to a back-end process). Blocking calls
// with a deadline, made on the VMM thread. Every reply is validated (request id, REPLY flag, size, fds)
// before use: a bad reply is an error (and a "SPEC VIOLATION" trace line), never a crash. After
// SET_PROTOCOL_FEATURES with REPLY_ACK, every request without its own reply carries NEED_REPLY and its
// status is checked.
//
// Deadlock rule: while waiting for a reply on the main socket, the backend channel is served as well, so a
// back-end that sends SHMEM_MAP with NEED_REPLY before answering us is never stuck.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "vhost/backend_channel.h"
#include "vhost/protocol.h"
#include "vhost/socket.h"
#include "vhost/trace.h"

namespace kite::vhost {

// What this front-end offers; negotiate_protocol_features() intersects it with the back-end's bits.
inline constexpr uint64_t kOfferedProtocolFeatures =
    protocol_feature::kMq | protocol_feature::kReplyAck | protocol_feature::kBackendReq |
    protocol_feature::kBackendSendFd | protocol_feature::kConfig | protocol_feature::kConfigureMemSlots |
    protocol_feature::kInflightShmfd | protocol_feature::kResetDevice | protocol_feature::kStatus |
    protocol_feature::kShmem;
static_assert((kOfferedProtocolFeatures & protocol_feature::kGpaAddresses) == 0, "bit 21 is not SHMEM");

// One guest RAM region as the back-end should map it; `fd` is borrowed for the duration of the call.
struct MemoryRegionFd {
    MemoryRegion region;
    int fd = -1;
};

struct InflightBuffer {
    InflightDescription description;
    UniqueFd fd;
};

struct FrontendOptions {
    Millis timeout = Millis(5000);  // per request/reply exchange
    TraceSink trace;                // empty = no tracing
};

class Frontend {
public:
    explicit Frontend(Connection conn, FrontendOptions options = {});
    // Connects to the back-end's socket, retrying until `connect_timeout`; the peer must pass `peer`.
    static Result<std::unique_ptr<Frontend>> connect(const std::string& path, Millis connect_timeout,
                                                     FrontendOptions options = {}, const PeerRule& peer = {});

    Result<uint64_t> get_features();
    Result<void> set_features(uint64_t features);
    Result<uint64_t> get_protocol_features();
    Result<void> set_protocol_features(uint64_t features);
    // GET_PROTOCOL_FEATURES, intersect with `wanted & kOfferedProtocolFeatures`, SET_PROTOCOL_FEATURES.
    // Requires the back-end to have offered kFeatureProtocolFeatures (get_features first).
    Result<uint64_t> negotiate_protocol_features(uint64_t wanted = kOfferedProtocolFeatures);
    uint64_t protocol_features() const { return protocol_features_; }
    bool has(uint64_t protocol_feature_bit) const { return (protocol_features_ & protocol_feature_bit) != 0; }

    Result<void> set_owner();
    Result<void> reset_device();
    Result<void> set_status(uint8_t status);
    Result<uint8_t> get_status();

    Result<void> set_mem_table(std::span<const MemoryRegionFd> regions);
    Result<uint64_t> get_max_mem_slots();
    Result<void> add_mem_reg(const MemoryRegionFd& region);
    Result<void> rem_mem_reg(const MemoryRegion& region);

    Result<uint64_t> get_queue_num();
    Result<void> set_vring_num(uint32_t index, uint32_t num);
    Result<void> set_vring_addr(const VringAddr& addr);
    Result<void> set_vring_base(uint32_t index, uint32_t base);
    // Stops the ring and returns the next available index the back-end would have processed.
    Result<uint32_t> get_vring_base(uint32_t index);
    // fd < 0 sends the "no fd, poll" flag instead.
    Result<void> set_vring_kick(uint32_t index, int fd);
    Result<void> set_vring_call(uint32_t index, int fd);
    Result<void> set_vring_err(uint32_t index, int fd);
    Result<void> set_vring_enable(uint32_t index, bool enable);

    Result<std::vector<uint8_t>> get_config(uint32_t offset, uint32_t size);
    Result<void> set_config(uint32_t offset, std::span<const uint8_t> data);

    Result<InflightBuffer> get_inflight_fd(uint16_t num_queues, uint16_t queue_size);
    Result<void> set_inflight_fd(const InflightDescription& description, int fd);

    // Shared memory region sizes indexed by shmid (256 entries, 0 = unused), checked: page multiples and
    // nregions equal to the number of non-zero sizes, at most kMaxShmRegionsPerDevice of them.
    Result<std::vector<uint64_t>> get_shmem_config();

    // Creates the backend channel: a socketpair whose other end goes to the back-end with
    // SET_BACKEND_REQ_FD. The channel uses the negotiated protocol features and this front-end's tracer;
    // `options.protocol_features` and `options.tracer` are filled in here. Start it on the VMM loop with
    // backend_channel()->start(io).
    Result<BackendChannel*> open_backend_channel(BackendChannel::Options options);
    BackendChannel* backend_channel() const { return channel_.get(); }

    // False after the main socket failed (peer gone, timeout, malformed reply): the connection is unusable.
    bool connected() const { return connected_; }
    int fd() const { return conn_.fd(); }

private:
    // Sends a request that has no reply of its own; with REPLY_ACK it asks for and checks the ack.
    Result<void> send_no_reply(FrontendReq req, std::span<const uint8_t> payload, std::span<const int> fds = {});
    // Sends a request and returns its validated reply.
    Result<Message> call(FrontendReq req, std::span<const uint8_t> payload, uint32_t expected_config_size = 0);
    Result<void> send(FrontendReq req, uint32_t flags, std::span<const uint8_t> payload, std::span<const int> fds);
    Result<Message> wait_reply(FrontendReq req, uint32_t expected_config_size);
    Result<uint64_t> call_u64(FrontendReq req);
    Result<void> set_vring_fd(FrontendReq req, uint32_t index, int fd);
    std::unexpected<Error> broken(Error error);

    Connection conn_;
    FrontendOptions options_;
    Tracer tracer_;
    uint64_t features_offered_ = 0;
    uint64_t protocol_features_ = 0;
    bool connected_ = true;
    std::unique_ptr<BackendChannel> channel_;
};

}  // namespace kite::vhost
