// A Linux tap interface for virtio-net: /dev/net/tun with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR and a
// 12-byte virtio_net_hdr (the VIRTIO 1.x header, num_buffers included) in front of every frame.
#pragma once

#include <span>
#include <string>

#include "base/error.h"
#include "base/fd.h"

namespace kite {

inline constexpr int kVnetHeaderSize = 12;

// Opens (or creates, as root) the tap `name`, non-blocking. Offloads start disabled.
Result<UniqueFd> open_tap(const std::string& name);

// TUNSETOFFLOAD from the guest's negotiated virtio-net features: what the guest accepts in its rx
// buffers (partial checksums, TSO4/6, UFO).
Result<void> set_tap_offloads(int tap_fd, uint64_t driver_features);

// The tap ioctls a running Kite sends (set_tap_offloads): the seccomp filter allows these and no others,
// so a taken-over VMM cannot attach to another interface (TUNSETIFF) or change this one's owner.
std::span<const unsigned long> tap_ioctl_requests_after_open();

}  // namespace kite
