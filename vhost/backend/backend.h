// A small vhost-user back-end (the server side), for the example back-ends and the tests: accepts one
// front-end, answers its messages (features, protocol features, memory table with the regions mmapped,
// vrings with a devices/virtio Queue once a ring is started, config space, status, GET_SHMEM_CONFIG from
// configured sizes, inflight buffer) and sends back-end requests on the backend channel, among them
// shmem_map() whose fd is a parameter: the back-end passes the memory it wants mapped.
//
// Single-threaded: the owner calls handle_one() when the socket is readable.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "devices/virtio/queue.h"
#include "vhost/backend/backend_memory.h"
#include "vhost/protocol.h"
#include "vhost/socket.h"
#include "vhost/trace.h"

namespace kite::vhost {

struct BackendConfig {
    uint64_t features = (1ull << 32) | kFeatureProtocolFeatures;  // VIRTIO_F_VERSION_1 | PROTOCOL_FEATURES
    uint64_t protocol_features = protocol_feature::kMq | protocol_feature::kReplyAck | protocol_feature::kBackendReq |
                                 protocol_feature::kBackendSendFd | protocol_feature::kConfig |
                                 protocol_feature::kConfigureMemSlots | protocol_feature::kInflightShmfd |
                                 protocol_feature::kResetDevice | protocol_feature::kStatus | protocol_feature::kShmem;
    uint16_t num_queues = 1;
    uint16_t max_queue_size = 256;
    uint64_t max_mem_slots = 8;
    std::vector<uint64_t> shm_sizes;   // index = shmid; 0 = unused id
    std::vector<uint8_t> config_space; // device config space (at most 256 bytes)
    TraceSink trace;
};

struct BackendVring {
    uint32_t num = 0;
    VringAddr addr{};
    uint32_t base = 0;
    UniqueFd kick, call, err;
    bool enabled = false;
    bool started = false;
    std::optional<Queue> queue;  // built when the ring starts and its addresses lie in guest memory
};

class Backend {
public:
    Backend(Connection conn, BackendConfig config);
    // Listens on `path`, accepts one front-end within `timeout`, stops listening.
    static Result<std::unique_ptr<Backend>> accept_one(const std::string& path, BackendConfig config, Millis timeout);

    // Receives and answers one front-end message. Returns false when the front-end hung up. A malformed
    // request gets an error reply if it asked for one; stream errors are returned.
    Result<bool> handle_one(Millis timeout);

    // Backend-channel requests. They need BACKEND_REQ (and SHMEM for the shmem ones); with REPLY_ACK they ask
    // for a reply and return an error for a non-zero status.
    Result<void> shmem_map(uint8_t shmid, int fd, uint64_t fd_offset, uint64_t shm_offset, uint64_t len, uint64_t flags);
    Result<void> shmem_unmap(uint8_t shmid, uint64_t shm_offset, uint64_t len);
    Result<void> config_change();
    // Any request with any payload and fds (tests use it to send malformed ones). Returns the reply status when
    // a reply was requested (REPLY_ACK), else 0.
    Result<uint64_t> send_backend_request(uint32_t request, std::span<const uint8_t> payload, std::span<const int> fds,
                                          Millis timeout = Millis(5000));

    // Called after SET_STATUS with the new status (the example maps its memory after DRIVER_OK).
    void set_status_callback(std::function<void(uint8_t)> callback) { on_status_ = std::move(callback); }

    int fd() const { return conn_.fd(); }
    uint64_t acked_features() const { return acked_features_; }
    uint64_t protocol_features() const { return protocol_features_; }
    bool owner_set() const { return owner_; }
    uint8_t status() const { return status_; }
    bool has_backend_channel() const { return channel_.has_value(); }
    const BackendConfig& config() const { return config_; }
    BackendMemory& memory() { return memory_; }
    std::vector<BackendVring>& vrings() { return vrings_; }
    std::span<const uint8_t> config_space() const { return config_.config_space; }
    // The inflight buffer of GET_INFLIGHT_FD / SET_INFLIGHT_FD (-1 if none) and its last description.
    int inflight_fd() const { return inflight_fd_.get(); }
    const InflightDescription& inflight() const { return inflight_; }

private:
    // Handles a validated request; returns the reply payload for requests that have one.
    Result<std::optional<std::vector<uint8_t>>> dispatch(Message& msg);
    Result<void> set_vring_fd(Message& msg, UniqueFd BackendVring::*which);
    BackendVring* vring(uint32_t index);
    void start_ring(BackendVring& ring);
    void reset();

    Connection conn_;
    BackendConfig config_;
    Tracer tracer_;
    uint64_t acked_features_ = 0;
    uint64_t protocol_features_ = 0;
    bool owner_ = false;
    uint8_t status_ = 0;
    BackendMemory memory_;
    std::vector<BackendVring> vrings_;
    std::optional<Connection> channel_;
    UniqueFd inflight_fd_;
    InflightDescription inflight_{};
    std::function<void(uint8_t)> on_status_;
};

}  // namespace kite::vhost
