#include "vhost/trace.h"

#include <fmt/format.h>

namespace kite::vhost {

namespace {

std::string u64_field(std::string_view label, std::span<const uint8_t> payload) {
    auto value = payload_as<uint64_t>(payload);
    return value ? fmt::format("{}={:#x}", label, *value) : std::string();
}

std::string decode_frontend(FrontendReq req, bool reply, std::span<const uint8_t> payload) {
    using R = FrontendReq;
    if (reply) {
        switch (req) {
        case R::GetFeatures: {
            auto v = payload_as<uint64_t>(payload);
            return v ? fmt::format("features={:#x} ({})", *v, virtio_feature_names(*v)) : "";
        }
        case R::GetProtocolFeatures: {
            auto v = payload_as<uint64_t>(payload);
            return v ? fmt::format("protocol_features={:#x} ({})", *v, protocol_feature_names(*v)) : "";
        }
        case R::GetVringBase: {
            auto s = payload_as<VringState>(payload);
            return s ? fmt::format("index={} base={}", s->index, s->num) : "";
        }
        case R::GetQueueNum: return u64_field("queues", payload);
        case R::GetMaxMemSlots: return u64_field("slots", payload);
        case R::GetStatus: return u64_field("status", payload);
        case R::GetShmemConfig: {
            auto c = payload_as<VhostUserShMemConfig>(payload);
            if (!c) return "";
            std::string out = fmt::format("nregions={}", c->nregions);
            for (size_t id = 0; id < kMaxShmRegions; ++id)
                if (c->memory_sizes[id] != 0) out += fmt::format(" shm{}={:#x}", id, c->memory_sizes[id]);
            return out;
        }
        case R::GetInflightFd: {
            auto i = payload_as<InflightDescription>(payload);
            return i ? fmt::format("mmap_size={:#x} mmap_offset={:#x} queues={} queue_size={}", i->mmap_size,
                                   i->mmap_offset, i->num_queues, i->queue_size)
                     : "";
        }
        case R::GetConfig: {
            auto c = decode_config(payload);
            return c ? fmt::format("offset={} size={}", c->head.offset, c->head.size) : "";
        }
        default: return u64_field("status", payload);
        }
    }
    switch (req) {
    case R::SetFeatures: {
        auto v = payload_as<uint64_t>(payload);
        return v ? fmt::format("features={:#x} ({})", *v, virtio_feature_names(*v)) : "";
    }
    case R::SetProtocolFeatures: {
        auto v = payload_as<uint64_t>(payload);
        return v ? fmt::format("protocol_features={:#x} ({})", *v, protocol_feature_names(*v)) : "";
    }
    case R::SetVringNum:
    case R::SetVringBase:
    case R::GetVringBase:
    case R::SetVringEnable: {
        auto s = payload_as<VringState>(payload);
        return s ? fmt::format("index={} num={}", s->index, s->num) : "";
    }
    case R::SetVringAddr: {
        auto a = payload_as<VringAddr>(payload);
        return a ? fmt::format("index={} flags={:#x} desc={:#x} used={:#x} avail={:#x} log={:#x}", a->index, a->flags,
                               a->desc_user_addr, a->used_user_addr, a->avail_user_addr, a->log_guest_addr)
                 : "";
    }
    case R::SetVringKick:
    case R::SetVringCall:
    case R::SetVringErr: {
        auto v = payload_as<uint64_t>(payload);
        return v ? fmt::format("index={}{}", *v & kVringIndexMask, (*v & kVringNoFd) ? " no-fd" : "") : "";
    }
    case R::SetMemTable: {
        auto regions = decode_memory_table(payload);
        if (!regions) return "";
        std::string out = fmt::format("nregions={}", regions->size());
        for (const auto& r : *regions)
            out += fmt::format(" [gpa={:#x} size={:#x} uaddr={:#x} offset={:#x}]", r.guest_phys_addr, r.memory_size,
                               r.userspace_addr, r.mmap_offset);
        return out;
    }
    case R::AddMemReg:
    case R::RemMemReg: {
        auto r = payload_as<SingleMemoryRegion>(payload);
        return r ? fmt::format("gpa={:#x} size={:#x} uaddr={:#x} offset={:#x}", r->region.guest_phys_addr,
                               r->region.memory_size, r->region.userspace_addr, r->region.mmap_offset)
                 : "";
    }
    case R::SetStatus: return u64_field("status", payload);
    case R::GetConfig:
    case R::SetConfig: {
        auto c = decode_config(payload);
        return c ? fmt::format("offset={} size={} flags={:#x}", c->head.offset, c->head.size, c->head.flags) : "";
    }
    case R::GetInflightFd:
    case R::SetInflightFd: {
        auto i = payload_as<InflightDescription>(payload);
        return i ? fmt::format("mmap_size={:#x} mmap_offset={:#x} queues={} queue_size={}", i->mmap_size, i->mmap_offset,
                               i->num_queues, i->queue_size)
                 : "";
    }
    default: return "";
    }
}

std::string decode_backend(BackendReq req, bool reply, std::span<const uint8_t> payload) {
    if (reply) return u64_field("status", payload);
    switch (req) {
    case BackendReq::ShmemMap:
    case BackendReq::ShmemUnmap: {
        auto m = payload_as<VhostUserMMap>(payload);
        return m ? fmt::format("shmid={} fd_offset={:#x} shm_offset={:#x} len={:#x} flags={:#x}{}", m->shmid, m->fd_offset,
                               m->shm_offset, m->len, m->flags, (m->flags & kShmemMapReadWrite) ? " (rw)" : " (ro)")
                 : "";
    }
    case BackendReq::VringCall:
    case BackendReq::VringErr: {
        auto s = payload_as<VringState>(payload);
        return s ? fmt::format("index={}", s->index) : "";
    }
    default: return "";
    }
}

std::string_view arrow(TraceDirection dir) {
    switch (dir) {
    case TraceDirection::FrontendRequest: return "->";
    case TraceDirection::BackendReply: return "<-";
    case TraceDirection::BackendRequest: return "<=";
    case TraceDirection::FrontendReply: return "=>";
    }
    return "??";
}

bool is_reply(TraceDirection dir) { return dir == TraceDirection::BackendReply || dir == TraceDirection::FrontendReply; }
bool on_backend_channel(TraceDirection dir) {
    return dir == TraceDirection::BackendRequest || dir == TraceDirection::FrontendReply;
}

}  // namespace

std::string decode_payload(TraceDirection dir, uint32_t request, std::span<const uint8_t> payload) {
    if (on_backend_channel(dir)) return decode_backend(static_cast<BackendReq>(request), is_reply(dir), payload);
    return decode_frontend(static_cast<FrontendReq>(request), is_reply(dir), payload);
}

std::string describe_message(TraceDirection dir, const Header& header, std::span<const uint8_t> payload, size_t nfds) {
    std::string req = on_backend_channel(dir) ? backend_req_name(header.request) : frontend_req_name(header.request);
    std::string flags = fmt::format("{:#x}", header.flags);
    if (header.flags & kFlagReply) flags += " REPLY";
    if (header.flags & kFlagNeedReply) flags += " NEED_REPLY";
    std::string line = fmt::format("vhost-user {} {}{} flags={} size={}", arrow(dir), req, is_reply(dir) ? " reply" : "",
                                   flags, header.size);
    if (nfds != 0) line += fmt::format(" fds={}", nfds);
    std::string fields = decode_payload(dir, header.request, payload);
    if (!fields.empty()) line += " " + fields;
    return line;
}

void Tracer::message(TraceDirection dir, const Header& header, std::span<const uint8_t> payload, size_t nfds) const {
    if (sink_) sink_(describe_message(dir, header, payload, nfds));
}

void Tracer::violation(std::string_view what) const {
    if (sink_) sink_(fmt::format("vhost-user SPEC VIOLATION: {}", what));
}

void Tracer::note(std::string_view what) const {
    if (sink_) sink_(fmt::format("vhost-user {}", what));
}

}  // namespace kite::vhost
