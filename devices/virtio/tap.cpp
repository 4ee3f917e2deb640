#include "devices/virtio/tap.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>

#include <cstring>

#include "devices/virtio/net_features.h"

namespace kite {

Result<UniqueFd> open_tap(const std::string& name) {
    if (name.size() >= IFNAMSIZ) return fail("tap name '" + name + "' longer than " + std::to_string(IFNAMSIZ - 1));
    UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
    if (!fd) return std::unexpected(errno_error("open /dev/net/tun"));
    ifreq ifr{};
    std::memcpy(ifr.ifr_name, name.c_str(), name.size());
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    if (::ioctl(fd.get(), TUNSETIFF, &ifr) < 0) return std::unexpected(errno_error("TUNSETIFF " + name));
    int header = kVnetHeaderSize;
    if (::ioctl(fd.get(), TUNSETVNETHDRSZ, &header) < 0) return std::unexpected(errno_error("TUNSETVNETHDRSZ"));
    if (::ioctl(fd.get(), TUNSETOFFLOAD, 0) < 0) return std::unexpected(errno_error("TUNSETOFFLOAD"));
    return fd;
}

Result<void> set_tap_offloads(int tap_fd, uint64_t driver_features) {
    unsigned flags = 0;
    if (driver_features & net::kGuestCsum) flags |= TUN_F_CSUM;
    if (driver_features & net::kGuestTso4) flags |= TUN_F_TSO4;
    if (driver_features & net::kGuestTso6) flags |= TUN_F_TSO6;
    if (driver_features & net::kGuestUfo) flags |= TUN_F_UFO;
    if (::ioctl(tap_fd, TUNSETOFFLOAD, flags) < 0) return std::unexpected(errno_error("TUNSETOFFLOAD"));
    return {};
}

std::span<const unsigned long> tap_ioctl_requests_after_open() {
    static constexpr unsigned long kRequests[] = {TUNSETOFFLOAD};
    return kRequests;
}

}  // namespace kite
