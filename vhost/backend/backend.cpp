#include "vhost/backend/backend.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace kite::vhost {

namespace {

using Reply = std::optional<std::vector<uint8_t>>;

std::vector<uint8_t> u64_bytes(uint64_t value) { return bytes_of(value); }

// Split-queue inflight region per queue: 16-byte head + one 16-byte DescStateSplit per descriptor.
uint64_t inflight_queue_size(uint16_t queue_size) { return 16 + 16 * uint64_t{queue_size}; }

}  // namespace

Backend::Backend(Connection conn, BackendConfig config)
    : conn_(std::move(conn)), config_(std::move(config)), tracer_(config_.trace), vrings_(config_.num_queues) {
    config_.config_space.resize(std::min(config_.config_space.size(), kMaxConfigSize));
    // Only bit 22 means SHMEM; never let a configuration offer GPA_ADDRESSES by accident.
    config_.protocol_features &= ~protocol_feature::kGpaAddresses;
}

Result<std::unique_ptr<Backend>> Backend::accept_one(const std::string& path, BackendConfig config, Millis timeout) {
    auto listener = Listener::listen(path);
    if (!listener) return std::unexpected(listener.error());
    auto conn = listener->accept(timeout);
    if (!conn) return std::unexpected(conn.error());
    return std::make_unique<Backend>(std::move(*conn), std::move(config));
}

BackendVring* Backend::vring(uint32_t index) { return index < vrings_.size() ? &vrings_[index] : nullptr; }

void Backend::reset() {
    for (auto& ring : vrings_) ring = BackendVring{};
    status_ = 0;
}

void Backend::start_ring(BackendVring& ring) {
    ring.started = true;
    auto desc = memory_.user_to_guest(ring.addr.desc_user_addr);
    auto avail = memory_.user_to_guest(ring.addr.avail_user_addr);
    auto used = memory_.user_to_guest(ring.addr.used_user_addr);
    if (!desc || !avail || !used || ring.num == 0 || ring.num > 0xffff) {
        spdlog::warn("vhost-user back-end: ring addresses are not in guest memory; ring not served");
        return;
    }
    QueueConfig qc{static_cast<uint16_t>(ring.num), true, *desc, *avail, *used};
    auto queue = Queue::create(memory_, qc, config_.max_queue_size, acked_features_);
    if (!queue) {
        spdlog::warn("vhost-user back-end: {}", queue.error().message);
        return;
    }
    queue->set_next_avail(static_cast<uint16_t>(ring.base));
    ring.queue.emplace(std::move(*queue));
}

Result<void> Backend::set_vring_fd(Message& msg, UniqueFd BackendVring::*which) {
    uint64_t value = *payload_as<uint64_t>(msg.payload);
    auto* ring = vring(static_cast<uint32_t>(value & kVringIndexMask));
    if (ring == nullptr) return fail(fmt::format("ring {} does not exist", value & kVringIndexMask));
    // validate_frontend_request guarantees one fd exactly when the no-fd bit is clear.
    (ring->*which) = msg.fds.empty() ? UniqueFd() : std::move(msg.fds[0]);
    if (which == &BackendVring::kick) start_ring(*ring);
    return {};
}

Result<Reply> Backend::dispatch(Message& msg) {
    using R = FrontendReq;
    const auto& p = msg.payload;
    switch (static_cast<R>(msg.header.request)) {
    case R::GetFeatures: return Reply(u64_bytes(config_.features));
    case R::SetFeatures: {
        uint64_t features = *payload_as<uint64_t>(p);
        if ((features & ~config_.features) != 0) return fail(fmt::format("features {:#x} were not offered", features));
        acked_features_ = features;
        // Without PROTOCOL_FEATURES rings start enabled (spec, "Ring states").
        if ((features & kFeatureProtocolFeatures) == 0)
            for (auto& ring : vrings_) ring.enabled = true;
        return Reply();
    }
    case R::GetProtocolFeatures: return Reply(u64_bytes(config_.protocol_features));
    case R::SetProtocolFeatures: {
        uint64_t features = *payload_as<uint64_t>(p);
        if ((features & ~config_.protocol_features) != 0) return fail(fmt::format("protocol features {:#x} were not offered", features));
        protocol_features_ = features;
        return Reply();
    }
    case R::SetOwner: owner_ = true; return Reply();
    case R::ResetOwner: return Reply();
    case R::SetMemTable: {
        auto regions = *decode_memory_table(p);
        memory_.clear();
        for (size_t i = 0; i < regions.size(); ++i)
            if (auto ok = memory_.add(regions[i], msg.fds[i].get(), kMaxMemRegions); !ok) return std::unexpected(ok.error());
        return Reply();
    }
    case R::GetMaxMemSlots: return Reply(u64_bytes(config_.max_mem_slots));
    case R::AddMemReg: {
        auto region = *payload_as<SingleMemoryRegion>(p);
        if (auto ok = memory_.add(region.region, msg.fds[0].get(), config_.max_mem_slots); !ok) return std::unexpected(ok.error());
        return Reply();
    }
    case R::RemMemReg: {
        auto region = *payload_as<SingleMemoryRegion>(p);
        if (auto ok = memory_.remove(region.region); !ok) return std::unexpected(ok.error());
        return Reply();
    }
    case R::GetQueueNum: return Reply(u64_bytes(config_.num_queues));
    case R::SetVringNum: {
        auto state = *payload_as<VringState>(p);
        auto* ring = vring(state.index);
        if (ring == nullptr || state.num == 0 || state.num > config_.max_queue_size)
            return fail(fmt::format("SET_VRING_NUM ring {} num {}", state.index, state.num));
        ring->num = state.num;
        return Reply();
    }
    case R::SetVringAddr: {
        auto addr = *payload_as<VringAddr>(p);
        auto* ring = vring(addr.index);
        if (ring == nullptr) return fail(fmt::format("ring {} does not exist", addr.index));
        ring->addr = addr;
        return Reply();
    }
    case R::SetVringBase: {
        auto state = *payload_as<VringState>(p);
        auto* ring = vring(state.index);
        if (ring == nullptr) return fail(fmt::format("ring {} does not exist", state.index));
        ring->base = state.num;
        return Reply();
    }
    case R::GetVringBase: {
        auto state = *payload_as<VringState>(p);
        auto* ring = vring(state.index);
        if (ring == nullptr) return fail(fmt::format("ring {} does not exist", state.index));
        uint32_t base = ring->queue ? ring->queue->next_avail() : ring->base;
        // GET_VRING_BASE stops the ring.
        ring->started = false;
        ring->queue.reset();
        ring->base = base;
        return Reply(bytes_of(VringState{state.index, base}));
    }
    case R::SetVringKick:
    case R::SetVringCall:
    case R::SetVringErr: {
        auto which = msg.header.request == static_cast<uint32_t>(R::SetVringKick)   ? &BackendVring::kick
                     : msg.header.request == static_cast<uint32_t>(R::SetVringCall) ? &BackendVring::call
                                                                                     : &BackendVring::err;
        if (auto ok = set_vring_fd(msg, which); !ok) return std::unexpected(ok.error());
        return Reply();
    }
    case R::SetVringEnable: {
        auto state = *payload_as<VringState>(p);
        auto* ring = vring(state.index);
        if (ring == nullptr || state.num > 1) return fail(fmt::format("SET_VRING_ENABLE ring {} num {}", state.index, state.num));
        ring->enabled = state.num == 1;
        return Reply();
    }
    case R::SetBackendReqFd:
        channel_.emplace(std::move(msg.fds[0]));
        return Reply();
    case R::GetConfig:
    case R::SetConfig: {
        auto config = *decode_config(p);
        std::vector<uint8_t> space = config_.config_space;
        space.resize(kMaxConfigSize);
        if (msg.header.request == static_cast<uint32_t>(R::SetConfig)) {
            // decode_config keeps offset + size within kMaxConfigSize.
            size_t end = size_t{config.head.offset} + config.data.size();
            if (end > config_.config_space.size()) config_.config_space.resize(end);
            std::copy(config.data.begin(), config.data.end(), config_.config_space.begin() + config.head.offset);
            return Reply();
        }
        std::vector<uint8_t> data(space.begin() + config.head.offset, space.begin() + config.head.offset + config.head.size);
        return Reply(encode_config(config.head.offset, config.head.flags, data));
    }
    case R::ResetDevice: reset(); return Reply();
    case R::SetStatus: {
        uint64_t status = *payload_as<uint64_t>(p);
        if (status > 0xff) return fail(fmt::format("status {:#x} does not fit a byte", status));
        status_ = static_cast<uint8_t>(status);
        if (status_ == 0) reset();
        if (on_status_) on_status_(status_);
        return Reply();
    }
    case R::GetStatus: return Reply(u64_bytes(status_));
    case R::GetShmemConfig: {
        VhostUserShMemConfig config{};
        for (size_t id = 0; id < config_.shm_sizes.size() && id < kMaxShmRegions; ++id) {
            config.memory_sizes[id] = config_.shm_sizes[id];
            config.nregions += config_.shm_sizes[id] != 0 ? 1 : 0;
        }
        return Reply(bytes_of(config));
    }
    case R::GetInflightFd: {
        auto request = *payload_as<InflightDescription>(p);
        uint64_t size = uint64_t{request.num_queues} * inflight_queue_size(request.queue_size);
        // guest-controlled (front-end-controlled) sizes: keep the buffer bounded.
        if (size == 0 || size > (64ull << 20)) return fail(fmt::format("inflight buffer of {} bytes refused", size));
        UniqueFd fd(::memfd_create("vhost-inflight", MFD_CLOEXEC));
        if (!fd || ::ftruncate(fd.get(), static_cast<off_t>(size)) != 0)
            return fail("cannot create the inflight buffer");
        InflightDescription reply{size, 0, request.num_queues, request.queue_size, 0};
        inflight_fd_ = std::move(fd);
        inflight_ = reply;
        return Reply(bytes_of(reply));
    }
    case R::SetInflightFd:
        inflight_ = *payload_as<InflightDescription>(p);
        inflight_fd_ = std::move(msg.fds[0]);
        return Reply();
    default: return fail(fmt::format("{} is not supported by this back-end", frontend_req_name(msg.header.request)));
    }
}

Result<bool> Backend::handle_one(Millis timeout) {
    auto msg = conn_.receive(timeout);
    if (!msg) {
        if (msg.error().code == ECONNRESET) return false;
        return std::unexpected(msg.error());
    }
    tracer_.message(TraceDirection::FrontendRequest, msg->header, msg->payload, msg->fds.size());
    auto valid = validate_frontend_request(*msg);
    Result<Reply> result = valid ? dispatch(*msg) : std::unexpected(valid.error());
    if (!result) spdlog::warn("vhost-user back-end: {}: {}", frontend_req_name(msg->header.request), result.error().message);
    uint32_t flags = kVersion | kFlagReply;
    std::vector<uint8_t> payload;
    if (result && result->has_value()) {
        payload = std::move(**result);
    } else if (msg->need_reply()) {
        payload = u64_bytes(result ? 0 : 1);
    } else if (!result && msg->header.request == static_cast<uint32_t>(FrontendReq::GetConfig)) {
        // An empty GET_CONFIG reply is how a back-end reports failure.
    } else {
        return true;
    }
    // GET_INFLIGHT_FD is the one reply that carries an fd.
    bool with_fd = result && result->has_value() && msg->header.request == static_cast<uint32_t>(FrontendReq::GetInflightFd);
    int fds[] = {inflight_fd_.get()};
    std::span<const int> reply_fds = with_fd ? std::span<const int>(fds) : std::span<const int>();
    tracer_.message(TraceDirection::BackendReply, Header{msg->header.request, flags, static_cast<uint32_t>(payload.size())},
                    payload, reply_fds.size());
    if (auto ok = conn_.send(msg->header.request, flags, payload, reply_fds); !ok) return std::unexpected(ok.error());
    return true;
}

Result<uint64_t> Backend::send_backend_request(uint32_t request, std::span<const uint8_t> payload, std::span<const int> fds,
                                               Millis timeout) {
    if (!channel_) return fail("vhost-user back-end: no backend channel (SET_BACKEND_REQ_FD not received)");
    bool ack = (protocol_features_ & protocol_feature::kReplyAck) != 0;
    uint32_t flags = kVersion | (ack ? kFlagNeedReply : 0);
    tracer_.message(TraceDirection::BackendRequest, Header{request, flags, static_cast<uint32_t>(payload.size())}, payload, fds.size());
    if (auto ok = channel_->send(request, flags, payload, fds, timeout); !ok) return std::unexpected(ok.error());
    if (!ack) return 0;
    auto reply = channel_->receive(timeout);
    if (!reply) return std::unexpected(reply.error());
    tracer_.message(TraceDirection::FrontendReply, reply->header, reply->payload, reply->fds.size());
    return validate_backend_reply(static_cast<BackendReq>(request), *reply);
}

Result<void> Backend::shmem_map(uint8_t shmid, int fd, uint64_t fd_offset, uint64_t shm_offset, uint64_t len, uint64_t flags) {
    if ((protocol_features_ & protocol_feature::kShmem) == 0) return fail("vhost-user back-end: SHMEM was not negotiated");
    if (fd < 0) return fail("vhost-user back-end: SHMEM_MAP needs the fd of the memory to map");
    VhostUserMMap m{};
    m.shmid = shmid;
    m.fd_offset = fd_offset;
    m.shm_offset = shm_offset;
    m.len = len;
    m.flags = flags;
    int fds[] = {fd};
    auto status = send_backend_request(static_cast<uint32_t>(BackendReq::ShmemMap), bytes_of(m), fds);
    if (!status) return std::unexpected(status.error());
    if (*status != 0) return fail(fmt::format("vhost-user back-end: front-end refused SHMEM_MAP (status {})", *status));
    return {};
}

Result<void> Backend::shmem_unmap(uint8_t shmid, uint64_t shm_offset, uint64_t len) {
    if ((protocol_features_ & protocol_feature::kShmem) == 0) return fail("vhost-user back-end: SHMEM was not negotiated");
    VhostUserMMap m{};
    m.shmid = shmid;
    m.shm_offset = shm_offset;
    m.len = len;
    auto status = send_backend_request(static_cast<uint32_t>(BackendReq::ShmemUnmap), bytes_of(m), {});
    if (!status) return std::unexpected(status.error());
    if (*status != 0) return fail(fmt::format("vhost-user back-end: front-end refused SHMEM_UNMAP (status {})", *status));
    return {};
}

Result<void> Backend::config_change() {
    auto status = send_backend_request(static_cast<uint32_t>(BackendReq::ConfigChangeMsg), {}, {});
    if (!status) return std::unexpected(status.error());
    if (*status != 0) return fail("vhost-user back-end: front-end refused CONFIG_CHANGE_MSG");
    return {};
}

}  // namespace kite::vhost
