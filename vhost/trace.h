// Trace mode for back-end developers: every message in both directions decoded into one line (direction,
// request name, flags, size, fds, decoded fields), and spec violations by the back-end named as such:
//   "SPEC VIOLATION: back-end replied to GET_FEATURES with size 4, expected 8".
// Lines go to a sink function; the VMM points it at stderr or spdlog. Tracing off = an empty sink.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "vhost/protocol.h"

namespace kite::vhost {

using TraceSink = std::function<void(std::string_view line)>;

// Where a message travels:
//   "->" front-end request on the main socket       "<-" back-end reply on the main socket
//   "<=" back-end request on the backend channel    "=>" front-end reply on the backend channel
enum class TraceDirection { FrontendRequest, BackendReply, BackendRequest, FrontendReply };

// The decoded fields of one payload ("index=0 num=256", "features=0x... (VERSION_1|...)", memory regions,
// the SHMEM_MAP fields, ...). `request` is a FrontendReq for the first two directions, a BackendReq for the
// last two. Never fails: a payload of the wrong size is shown as its size only.
std::string decode_payload(TraceDirection dir, uint32_t request, std::span<const uint8_t> payload);

// The whole trace line of one message.
std::string describe_message(TraceDirection dir, const Header& header, std::span<const uint8_t> payload, size_t nfds);

class Tracer {
public:
    Tracer() = default;
    explicit Tracer(TraceSink sink) : sink_(std::move(sink)) {}

    bool enabled() const { return static_cast<bool>(sink_); }
    void message(TraceDirection dir, const Header& header, std::span<const uint8_t> payload, size_t nfds) const;
    // "SPEC VIOLATION: <what>"; used for every malformed message or reply from the back-end.
    void violation(std::string_view what) const;
    // Free-form note ("backend channel closed", "SHMEM_MAP refused: ...").
    void note(std::string_view what) const;

private:
    TraceSink sink_;
};

}  // namespace kite::vhost
