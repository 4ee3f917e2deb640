// Fuzzes the front-end's backend-channel request parser: input byte 0 is the number of fds that came with
// the message (0-15, real eventfds so ownership is exercised), the rest is the raw message. A valid
// request is then applied to a real shared memory window, as the channel would.
#include <sys/eventfd.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <variant>
#include <vector>

#include "vhost/backend_channel.h"
#include "vhost/shm_regions.h"

using namespace kite;
using namespace kite::vhost;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    size_t nfds = data[0] & 0x0f;
    std::vector<UniqueFd> fds;
    for (size_t i = 0; i < nfds; ++i) fds.emplace_back(::eventfd(0, EFD_CLOEXEC));
    auto msg = parse_message(std::span(data + 1, size - 1), std::move(fds));
    if (!msg) return 0;
    auto request = parse_backend_request(std::move(*msg));
    if (!request) return 0;
    static ShmWindowTable* table = [] {
        auto* t = new ShmWindowTable;
        (void)t->add_region(0, 1 << 20);
        return t;
    }();
    // The window checks every range itself, as it does behind the channel.
    if (auto* map = std::get_if<ShmemMapRequest>(&*request)) {
        (void)table->map(map->shmid, map->shm_offset, map->fd, map->fd_offset, map->len, map->writable);
    } else if (auto* unmap = std::get_if<ShmemUnmapRequest>(&*request)) {
        (void)table->unmap(unmap->shmid, unmap->shm_offset, unmap->len);
    }
    table->clear();
    return 0;
}
