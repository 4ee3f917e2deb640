#include "vhost/frontend.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

namespace kite::vhost {

namespace {
using Clock = std::chrono::steady_clock;
}  // namespace

Frontend::Frontend(Connection conn, FrontendOptions options)
    : conn_(std::move(conn)), options_(std::move(options)), tracer_(options_.trace) {}

Result<std::unique_ptr<Frontend>> Frontend::connect(const std::string& path, Millis connect_timeout,
                                                    FrontendOptions options, const PeerRule& peer) {
    auto conn = Connection::connect(path, connect_timeout, peer);
    if (!conn) return std::unexpected(conn.error());
    return std::make_unique<Frontend>(std::move(*conn), std::move(options));
}

std::unexpected<Error> Frontend::broken(Error error) {
    connected_ = false;
    return std::unexpected(std::move(error));
}

Result<void> Frontend::send(FrontendReq req, uint32_t flags, std::span<const uint8_t> payload, std::span<const int> fds) {
    if (!connected_) return fail(fmt::format("vhost-user: {} on a lost connection", name(req)));
    tracer_.message(TraceDirection::FrontendRequest, Header{static_cast<uint32_t>(req), flags, static_cast<uint32_t>(payload.size())},
                    payload, fds.size());
    auto sent = conn_.send(static_cast<uint32_t>(req), flags, payload, fds, options_.timeout);
    if (!sent) return broken(Error{fmt::format("vhost-user: sending {}: {}", name(req), sent.error().message), sent.error().code});
    return {};
}

Result<Message> Frontend::wait_reply(FrontendReq req, uint32_t expected_config_size) {
    auto deadline = Clock::now() + options_.timeout;
    for (;;) {
        auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
        if (left.count() <= 0)
            return broken(Error{fmt::format("vhost-user: no reply to {} within {} ms", name(req), options_.timeout.count()), ETIMEDOUT});
        pollfd fds[2] = {{conn_.fd(), POLLIN, 0}, {-1, POLLIN, 0}};
        if (channel_ && !channel_->closed()) fds[1].fd = channel_->fd();
        int n = ::poll(fds, 2, static_cast<int>(left.count()));
        if (n < 0 && errno != EINTR) return broken(errno_error("vhost-user: poll"));
        // Serve the back-end first: it may be waiting for our answer before it answers us.
        if (n > 0 && fds[1].revents != 0) channel_->serve_pending();
        if (n > 0 && fds[0].revents != 0) break;
    }
    auto reply = conn_.receive(options_.timeout);
    if (!reply) return broken(with_context(fmt::format("vhost-user: reply to {}", name(req)), reply.error()));
    tracer_.message(TraceDirection::BackendReply, reply->header, reply->payload, reply->fds.size());
    if (auto ok = validate_reply(req, *reply, expected_config_size); !ok) {
        tracer_.violation(ok.error().message);
        return broken(Error{"vhost-user: " + ok.error().message, EPROTO, ErrorKind::Invalid});
    }
    return reply;
}

Result<void> Frontend::send_no_reply(FrontendReq req, std::span<const uint8_t> payload, std::span<const int> fds) {
    bool ack = has(protocol_feature::kReplyAck);
    if (auto ok = send(req, kVersion | (ack ? kFlagNeedReply : 0), payload, fds); !ok) return ok;
    if (!ack) return {};
    auto reply = wait_reply(req, 0);
    if (!reply) return std::unexpected(reply.error());
    uint64_t status = *payload_as<uint64_t>(reply->payload);
    if (status != 0) return fail(fmt::format("vhost-user: back-end refused {} (status {})", name(req), status));
    return {};
}

Result<Message> Frontend::call(FrontendReq req, std::span<const uint8_t> payload, uint32_t expected_config_size) {
    if (auto ok = send(req, kVersion, payload, {}); !ok) return std::unexpected(ok.error());
    return wait_reply(req, expected_config_size);
}

Result<uint64_t> Frontend::call_u64(FrontendReq req) {
    auto reply = call(req, {});
    if (!reply) return std::unexpected(reply.error());
    return *payload_as<uint64_t>(reply->payload);
}

Result<uint64_t> Frontend::get_features() {
    auto features = call_u64(FrontendReq::GetFeatures);
    if (features) features_offered_ = *features;
    return features;
}

Result<void> Frontend::set_features(uint64_t features) {
    return send_no_reply(FrontendReq::SetFeatures, bytes_of(features));
}

Result<uint64_t> Frontend::get_protocol_features() { return call_u64(FrontendReq::GetProtocolFeatures); }

Result<void> Frontend::set_protocol_features(uint64_t features) {
    // Sent before REPLY_ACK takes effect: the ack bit in this very message is not yet agreed.
    if (auto ok = send(FrontendReq::SetProtocolFeatures, kVersion, bytes_of(features), {}); !ok) return ok;
    protocol_features_ = features;
    return {};
}

Result<uint64_t> Frontend::negotiate_protocol_features(uint64_t wanted) {
    if ((features_offered_ & kFeatureProtocolFeatures) == 0)
        return fail("vhost-user: back-end does not offer PROTOCOL_FEATURES (call get_features first)");
    auto offered = get_protocol_features();
    if (!offered) return offered;
    uint64_t agreed = *offered & wanted & kOfferedProtocolFeatures;
    if (auto ok = set_protocol_features(agreed); !ok) return std::unexpected(ok.error());
    return agreed;
}

Result<void> Frontend::set_owner() { return send_no_reply(FrontendReq::SetOwner, {}); }

Result<void> Frontend::reset_device() {
    if (!has(protocol_feature::kResetDevice)) return fail("vhost-user: RESET_DEVICE was not negotiated");
    return send_no_reply(FrontendReq::ResetDevice, {});
}

Result<void> Frontend::set_status(uint8_t status) {
    if (!has(protocol_feature::kStatus)) return fail("vhost-user: STATUS was not negotiated");
    return send_no_reply(FrontendReq::SetStatus, bytes_of(uint64_t{status}));
}

Result<uint8_t> Frontend::get_status() {
    if (!has(protocol_feature::kStatus)) return fail("vhost-user: STATUS was not negotiated");
    auto status = call_u64(FrontendReq::GetStatus);
    if (!status) return std::unexpected(status.error());
    if (*status > 0xff) return fail(fmt::format("vhost-user: back-end status {:#x} does not fit a byte", *status));
    return static_cast<uint8_t>(*status);
}

Result<void> Frontend::set_mem_table(std::span<const MemoryRegionFd> regions) {
    if (regions.size() > kMaxMemRegions)
        return fail(fmt::format("vhost-user: {} memory regions, SET_MEM_TABLE takes at most {}", regions.size(), kMaxMemRegions));
    std::vector<MemoryRegion> table;
    std::vector<int> fds;
    for (const auto& r : regions) {
        table.push_back(r.region);
        fds.push_back(r.fd);
    }
    return send_no_reply(FrontendReq::SetMemTable, encode_memory_table(table), fds);
}

Result<uint64_t> Frontend::get_max_mem_slots() {
    if (!has(protocol_feature::kConfigureMemSlots)) return fail("vhost-user: CONFIGURE_MEM_SLOTS was not negotiated");
    return call_u64(FrontendReq::GetMaxMemSlots);
}

Result<void> Frontend::add_mem_reg(const MemoryRegionFd& region) {
    if (!has(protocol_feature::kConfigureMemSlots)) return fail("vhost-user: CONFIGURE_MEM_SLOTS was not negotiated");
    int fds[] = {region.fd};
    return send_no_reply(FrontendReq::AddMemReg, bytes_of(SingleMemoryRegion{0, region.region}), fds);
}

Result<void> Frontend::rem_mem_reg(const MemoryRegion& region) {
    if (!has(protocol_feature::kConfigureMemSlots)) return fail("vhost-user: CONFIGURE_MEM_SLOTS was not negotiated");
    return send_no_reply(FrontendReq::RemMemReg, bytes_of(SingleMemoryRegion{0, region}));
}

Result<uint64_t> Frontend::get_queue_num() {
    if (!has(protocol_feature::kMq)) return fail("vhost-user: MQ was not negotiated");
    return call_u64(FrontendReq::GetQueueNum);
}

Result<void> Frontend::set_vring_num(uint32_t index, uint32_t num) {
    return send_no_reply(FrontendReq::SetVringNum, bytes_of(VringState{index, num}));
}

Result<void> Frontend::set_vring_addr(const VringAddr& addr) {
    return send_no_reply(FrontendReq::SetVringAddr, bytes_of(addr));
}

Result<void> Frontend::set_vring_base(uint32_t index, uint32_t base) {
    return send_no_reply(FrontendReq::SetVringBase, bytes_of(VringState{index, base}));
}

Result<uint32_t> Frontend::get_vring_base(uint32_t index) {
    auto reply = call(FrontendReq::GetVringBase, bytes_of(VringState{index, 0}));
    if (!reply) return std::unexpected(reply.error());
    auto state = *payload_as<VringState>(reply->payload);
    if (state.index != index) {
        tracer_.violation(fmt::format("back-end replied to GET_VRING_BASE for ring {} with ring {}", index, state.index));
        return fail(fmt::format("vhost-user: GET_VRING_BASE reply names ring {}, asked for {}", state.index, index));
    }
    return state.num;
}

Result<void> Frontend::set_vring_fd(FrontendReq req, uint32_t index, int fd) {
    if (index > kVringIndexMask) return fail(fmt::format("vhost-user: {} ring index {} does not fit 8 bits", name(req), index));
    uint64_t value = index | (fd < 0 ? kVringNoFd : 0);
    int fds[] = {fd};
    return send_no_reply(req, bytes_of(value), fd < 0 ? std::span<const int>() : std::span<const int>(fds));
}

Result<void> Frontend::set_vring_kick(uint32_t index, int fd) { return set_vring_fd(FrontendReq::SetVringKick, index, fd); }
Result<void> Frontend::set_vring_call(uint32_t index, int fd) { return set_vring_fd(FrontendReq::SetVringCall, index, fd); }
Result<void> Frontend::set_vring_err(uint32_t index, int fd) { return set_vring_fd(FrontendReq::SetVringErr, index, fd); }

Result<void> Frontend::set_vring_enable(uint32_t index, bool enable) {
    return send_no_reply(FrontendReq::SetVringEnable, bytes_of(VringState{index, enable ? 1u : 0u}));
}

Result<std::vector<uint8_t>> Frontend::get_config(uint32_t offset, uint32_t size) {
    if (!has(protocol_feature::kConfig)) return fail("vhost-user: CONFIG was not negotiated");
    if (uint64_t{offset} + size > kMaxConfigSize) return fail(fmt::format("vhost-user: config range {}+{} too large", offset, size));
    auto reply = call(FrontendReq::GetConfig, encode_config(offset, 0, std::vector<uint8_t>(size)), size);
    if (!reply) return std::unexpected(reply.error());
    auto config = decode_config(reply->payload);
    if (!config) return fail("vhost-user: GET_CONFIG reply: " + config.error().message);
    if (config->head.offset != offset || config->head.size != size) {
        tracer_.violation(fmt::format("back-end replied to GET_CONFIG {}+{} with {}+{}", offset, size, config->head.offset,
                                      config->head.size));
        return fail("vhost-user: GET_CONFIG reply describes another range");
    }
    return std::move(config->data);
}

Result<void> Frontend::set_config(uint32_t offset, std::span<const uint8_t> data) {
    if (!has(protocol_feature::kConfig)) return fail("vhost-user: CONFIG was not negotiated");
    if (uint64_t{offset} + data.size() > kMaxConfigSize) return fail("vhost-user: SET_CONFIG range too large");
    return send_no_reply(FrontendReq::SetConfig, encode_config(offset, 0, data));
}

Result<InflightBuffer> Frontend::get_inflight_fd(uint16_t num_queues, uint16_t queue_size) {
    if (!has(protocol_feature::kInflightShmfd)) return fail("vhost-user: INFLIGHT_SHMFD was not negotiated");
    InflightDescription request{};
    request.num_queues = num_queues;
    request.queue_size = queue_size;
    auto reply = call(FrontendReq::GetInflightFd, bytes_of(request));
    if (!reply) return std::unexpected(reply.error());
    InflightBuffer buffer{*payload_as<InflightDescription>(reply->payload), std::move(reply->fds[0])};
    return buffer;
}

Result<void> Frontend::set_inflight_fd(const InflightDescription& description, int fd) {
    if (!has(protocol_feature::kInflightShmfd)) return fail("vhost-user: INFLIGHT_SHMFD was not negotiated");
    int fds[] = {fd};
    return send_no_reply(FrontendReq::SetInflightFd, bytes_of(description), fds);
}

Result<std::vector<uint64_t>> Frontend::get_shmem_config() {
    if (!has(protocol_feature::kShmem)) return fail("vhost-user: SHMEM was not negotiated");
    auto reply = call(FrontendReq::GetShmemConfig, {});
    if (!reply) return std::unexpected(reply.error());
    auto config = *payload_as<VhostUserShMemConfig>(reply->payload);
    auto page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    uint32_t used = 0;
    for (uint64_t size : config.memory_sizes) {
        if (size % page != 0) {
            std::string what = fmt::format("back-end replied to GET_SHMEM_CONFIG with size {:#x}, not a page multiple", size);
            tracer_.violation(what);
            return fail("vhost-user: " + what);
        }
        used += size != 0 ? 1 : 0;
    }
    if (config.nregions != used) {
        std::string what = fmt::format("back-end replied to GET_SHMEM_CONFIG with nregions {} but {} non-zero sizes",
                                       config.nregions, used);
        tracer_.violation(what);
        return fail("vhost-user: " + what);
    }
    // Within the spec, but each region is a window (address space, VMAs, memslots) Kite reserves.
    if (used > kMaxShmRegionsPerDevice)
        return fail(fmt::format("vhost-user: the back-end declares {} shared memory regions, Kite allows at most {}", used,
                                kMaxShmRegionsPerDevice));
    return std::vector<uint64_t>(std::begin(config.memory_sizes), std::end(config.memory_sizes));
}

Result<BackendChannel*> Frontend::open_backend_channel(BackendChannel::Options options) {
    if (!has(protocol_feature::kBackendReq)) return fail("vhost-user: BACKEND_REQ was not negotiated");
    auto pair = socket_pair();
    if (!pair) return std::unexpected(pair.error());
    options.protocol_features = protocol_features_;
    options.tracer = tracer_;
    channel_ = std::make_unique<BackendChannel>(std::move(pair->first), std::move(options));
    int fds[] = {pair->second.get()};
    if (auto ok = send_no_reply(FrontendReq::SetBackendReqFd, {}, fds); !ok) {
        channel_.reset();
        return std::unexpected(ok.error());
    }
    return channel_.get();
}

}  // namespace kite::vhost
