#include "vhost/backend_channel.h"

#include <asio.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/log_limit.h"

namespace kite::vhost {

struct BackendChannel::Watcher {
    explicit Watcher(asio::io_context& io, int fd) : descriptor(io, fd) {}
    // The descriptor borrows the fd (Connection owns it): release it instead of closing it.
    ~Watcher() {
        asio::error_code ignored;
        descriptor.cancel(ignored);
        descriptor.release();
    }
    asio::posix::stream_descriptor descriptor;
};

Result<BackendRequest> parse_backend_request(Message msg) {
    if (auto ok = validate_backend_request(msg); !ok) return std::unexpected(ok.error());
    std::string what = backend_req_name(msg.header.request);
    switch (static_cast<BackendReq>(msg.header.request)) {
    case BackendReq::ConfigChangeMsg: return ConfigChangeRequest{};
    case BackendReq::ShmemMap: {
        auto m = *payload_as<VhostUserMMap>(msg.payload);
        if (msg.fds.size() != 1) return fail(fmt::format("SHMEM_MAP carries {} fds, exactly 1 required", msg.fds.size()));
        if ((m.flags & ~kShmemMapReadWrite) != 0) return fail(fmt::format("SHMEM_MAP: unknown flag bits in {:#x}", m.flags));
        return ShmemMapRequest{m.shmid, m.fd_offset, m.shm_offset, m.len, (m.flags & kShmemMapReadWrite) != 0,
                               std::move(msg.fds[0])};
    }
    case BackendReq::ShmemUnmap: {
        auto m = *payload_as<VhostUserMMap>(msg.payload);
        if (!msg.fds.empty()) return fail(fmt::format("SHMEM_UNMAP carries {} fds, none allowed", msg.fds.size()));
        if ((m.flags & ~kShmemMapReadWrite) != 0) return fail(fmt::format("SHMEM_UNMAP: unknown flag bits in {:#x}", m.flags));
        // fd_offset has no meaning for an unmap and is ignored.
        return ShmemUnmapRequest{m.shmid, m.shm_offset, m.len};
    }
    default: return fail(fmt::format("{}: not supported by this front-end", what));
    }
}

BackendChannel::BackendChannel(UniqueFd fd, Options options)
    : conn_(std::move(fd)), options_(std::move(options)) {}

BackendChannel::~BackendChannel() {
    *alive_ = false;
    watcher_.reset();
    // The table's owner (the device) clears it when the connection goes away on purpose; the table may
    // already be gone here, so it is not touched.
}

void BackendChannel::start(asio::io_context& io) {
    if (closed_) return;
    watcher_ = std::make_unique<Watcher>(io, conn_.fd());
    arm();
}

void BackendChannel::arm() {
    if (!watcher_ || closed_) return;
    std::weak_ptr<bool> alive = alive_;
    watcher_->descriptor.async_wait(asio::posix::stream_descriptor::wait_read, [this, alive](const asio::error_code& ec) {
        auto lock = alive.lock();
        if (!lock || !*lock || ec == asio::error::operation_aborted) return;
        serve_pending();
        arm();
    });
}

bool BackendChannel::serve_pending() {
    // Bounded so a flooding back-end cannot keep the VMM thread here forever.
    for (int i = 0; i < 64 && !closed_ && conn_.readable_now(); ++i) serve_one();
    return !closed_;
}

void BackendChannel::close(std::string_view why) {
    if (closed_) return;
    closed_ = true;
    options_.tracer.note(fmt::format("backend channel closed: {}", why));
    if (options_.shm != nullptr) options_.shm->clear();
    if (watcher_) {
        asio::error_code ignored;
        watcher_->descriptor.cancel(ignored);
    }
    if (options_.on_closed) options_.on_closed();
}

Result<void> BackendChannel::apply(BackendRequest& request) {
    if (std::holds_alternative<ConfigChangeRequest>(request)) {
        if (options_.on_config_change) options_.on_config_change();
        return {};
    }
    if ((options_.protocol_features & protocol_feature::kShmem) == 0) return fail("SHMEM was not negotiated");
    if (options_.shm == nullptr) return fail("the device has no shared memory regions");
    // The ranges (length, alignment, overflow, inside the region, overlaps) are the window's to check.
    if (auto* map = std::get_if<ShmemMapRequest>(&request))
        return options_.shm->map(map->shmid, map->shm_offset, map->fd, map->fd_offset, map->len, map->writable);
    auto& unmap = std::get<ShmemUnmapRequest>(request);
    return options_.shm->unmap(unmap.shmid, unmap.shm_offset, unmap.len);
}

void BackendChannel::serve_one() {
    auto msg = conn_.receive(options_.message_timeout);
    if (!msg) {
        if (msg.error().code != ECONNRESET) options_.tracer.violation("backend channel: " + msg.error().message);
        close(msg.error().message);
        return;
    }
    options_.tracer.message(TraceDirection::BackendRequest, msg->header, msg->payload, msg->fds.size());
    Header header = msg->header;
    auto request = parse_backend_request(std::move(*msg));
    Result<void> result = request ? apply(*request) : std::unexpected(request.error());
    // The fd of a SHMEM_MAP is closed here: the mapping keeps the file alive.
    request = fail("consumed");
    if (result) {
        ++served_;
    } else {
        ++refused_;
        std::string why = fmt::format("refused {}: {}", backend_req_name(header.request), result.error().message);
        options_.tracer.note(why);
        // Rate-limited across channels: a hostile back-end must not flood the log, reconnecting or not.
        static LogLimit log;
        log.warn("vhost-user backend channel: {} ({} refused so far)", why, refused_);
    }
    bool reply = (header.flags & kFlagNeedReply) != 0 && (options_.protocol_features & protocol_feature::kReplyAck) != 0;
    if (!reply) return;
    uint64_t status = result ? 0 : 1;
    uint32_t flags = kVersion | kFlagReply;
    auto payload = bytes_of(status);
    options_.tracer.message(TraceDirection::FrontendReply, Header{header.request, flags, 8}, payload, 0);
    if (auto sent = conn_.send(header.request, flags, payload, {}, options_.message_timeout); !sent) close(sent.error().message);
}

}  // namespace kite::vhost
