// Fuzzes the front-end's reply parsing: byte 0 picks the request the front-end sent (1-44), byte 1 the
// number of fds, the rest is the raw reply. Valid replies go through the decoders the Frontend uses
// (u64, vring state, GET_CONFIG payload, shmem config) and the trace decoder.
#include <sys/eventfd.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "vhost/protocol.h"
#include "vhost/trace.h"

using namespace kite;
using namespace kite::vhost;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) return 0;
    auto sent = static_cast<FrontendReq>(1 + data[0] % 44);
    size_t nfds = data[1] & 0x0f;
    std::vector<UniqueFd> fds;
    for (size_t i = 0; i < nfds; ++i) fds.emplace_back(::eventfd(0, EFD_CLOEXEC));
    auto bytes = std::span(data + 2, size - 2);
    auto msg = parse_message(bytes, std::move(fds));
    if (!msg) return 0;
    (void)describe_message(TraceDirection::BackendReply, msg->header, msg->payload, msg->fds.size());
    (void)describe_message(TraceDirection::FrontendRequest, msg->header, msg->payload, msg->fds.size());
    (void)validate_frontend_request(*msg);
    if (!validate_reply(sent, *msg, 8)) return 0;
    switch (sent) {
    case FrontendReq::GetConfig: (void)decode_config(msg->payload); break;
    case FrontendReq::GetVringBase: (void)payload_as<VringState>(msg->payload).value(); break;
    case FrontendReq::GetShmemConfig: (void)payload_as<VhostUserShMemConfig>(msg->payload).value(); break;
    case FrontendReq::GetInflightFd: (void)payload_as<InflightDescription>(msg->payload).value(); break;
    default: (void)payload_as<uint64_t>(msg->payload).value(); break;
    }
    (void)decode_memory_table(msg->payload);
    return 0;
}
