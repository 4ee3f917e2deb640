// shmem-backend: a demo vhost-user back-end for VIRTIO shared memory. It offers device id 42 (no Linux
// 6.1 driver claims it, so the device stays unbound and a guest program can look at it through /dev/mem),
// one queue, and shared memory region 0 (64 MiB by default). It maps a memfd holding a known pattern
// into region 0 with SHMEM_MAP and unmaps it with SHMEM_UNMAP:
//   - automatically once the front-end sets DRIVER_OK (--auto-map),
//   - on SIGUSR1 (toggles map/unmap),
//   - on stdin lines "map", "unmap", "bench N", "bench N vary", "quit".
// "bench N" (or --bench N after the automatic map) times N SHMEM_MAP + SHMEM_UNMAP round trips of one page
// at one place and prints the medians in microseconds; "bench N vary" alternates one and two pages. Each
// also prints the machine's floor for the same exchange without Kite (floor_map_unmap_us).
//
//   shmem-backend --socket-path /tmp/shm.sock --auto-map --bench 200
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "examples/shmem-backend/pattern.h"
#include "vhost/backend/backend.h"

using namespace kite;
using namespace kite::vhost;

namespace {

constexpr uint32_t kDeviceId = 42;
constexpr uint8_t kDriverOk = 4;

struct Options {
    std::string socket_path;
    uint64_t shm_size = 64ull << 20;
    uint64_t map_offset = 2ull << 20;
    uint64_t map_len = 2ull << 20;
    bool auto_map = false;
    unsigned bench = 0;
    bool trace = false;
};

Result<UniqueFd> pattern_memfd(uint64_t len) {
    UniqueFd fd(::memfd_create("shmem-backend-pattern", MFD_CLOEXEC));
    if (!fd) return std::unexpected(errno_error("memfd_create"));
    if (::ftruncate(fd.get(), static_cast<off_t>(len)) != 0) return std::unexpected(errno_error("ftruncate"));
    void* addr = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (addr == MAP_FAILED) return std::unexpected(errno_error("mmap"));
    auto* bytes = static_cast<uint8_t*>(addr);
    for (uint64_t i = 0; i < len; ++i) bytes[i] = example::pattern_byte(i);
    ::munmap(addr, len);
    return fd;
}

double median_us(std::vector<double> samples) {
    if (samples.empty()) return 0;
    std::sort(samples.begin(), samples.end());
    return samples[samples.size() / 2];
}

double us_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
    return std::chrono::duration<double, std::micro>(b - a).count();
}

// The floor under a SHMEM_MAP + SHMEM_UNMAP round trip on this machine, without Kite: the same two
// exchanges over a Unix socket (a header-sized message carrying the fd, then one without, each answered
// by a reply) with a thread of this process that does the least any front-end must: map the fd over a
// reserved page, then put anonymous memory back. Median microseconds of `rounds`, or -1 on an error.
// Raw sendmsg/recvmsg on purpose, not vhost::Connection: its deadline polls and split header/payload
// reads put this "floor" at 99-125 us on the host, above Kite's own 39 us round trip.
double floor_map_unmap_us(unsigned rounds, int memfd) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return -1;
    UniqueFd ours(sv[0]), theirs(sv[1]);
    void* page = ::mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (page == MAP_FAILED) return -1;
    std::thread peer([fd = theirs.get(), page] {
        uint8_t msg[40];
        for (;;) {
            alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
            iovec iov{msg, sizeof msg};
            msghdr mh{};
            mh.msg_iov = &iov;
            mh.msg_iovlen = 1;
            mh.msg_control = control;
            mh.msg_controllen = sizeof control;
            if (::recvmsg(fd, &mh, MSG_CMSG_CLOEXEC) != sizeof msg) return;
            cmsghdr* c = CMSG_FIRSTHDR(&mh);
            void* at = MAP_FAILED;
            if (c != nullptr && c->cmsg_type == SCM_RIGHTS) {
                int passed;
                std::memcpy(&passed, CMSG_DATA(c), sizeof passed);
                at = ::mmap(page, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, passed, 0);
                ::close(passed);
            } else {
                at = ::mmap(page, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
            }
            uint64_t reply = at == MAP_FAILED ? 1 : 0;
            if (::send(fd, &reply, sizeof reply, MSG_NOSIGNAL) != sizeof reply) return;
        }
    });
    auto exchange = [&](int fd_to_pass) {
        uint8_t msg[40] = {};
        iovec iov{msg, sizeof msg};
        msghdr mh{};
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
        if (fd_to_pass >= 0) {
            mh.msg_control = control;
            mh.msg_controllen = sizeof control;
            cmsghdr* c = CMSG_FIRSTHDR(&mh);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            std::memcpy(CMSG_DATA(c), &fd_to_pass, sizeof fd_to_pass);
        }
        uint64_t reply = 1;
        return ::sendmsg(ours.get(), &mh, MSG_NOSIGNAL) == sizeof msg &&
               ::recv(ours.get(), &reply, sizeof reply, MSG_WAITALL) == sizeof reply && reply == 0;
    };
    std::vector<double> trips;
    for (unsigned i = 0; i < rounds; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        if (!exchange(memfd) || !exchange(-1)) break;
        trips.push_back(us_between(t0, std::chrono::steady_clock::now()));
    }
    ::shutdown(ours.get(), SHUT_RDWR);  // the peer's recvmsg returns 0 and it ends
    peer.join();
    ::munmap(page, 4096);
    return trips.size() == rounds ? median_us(trips) : -1;
}

class Demo {
public:
    Demo(Backend& backend, const Options& options, UniqueFd memfd) : backend_(backend), options_(options), memfd_(std::move(memfd)) {}

    void map() {
        if (mapped_) return;
        auto ok = backend_.shmem_map(0, memfd_.get(), 0, options_.map_offset, options_.map_len, 0);
        if (!ok) {
            std::fprintf(stderr, "shmem-backend: map failed: %s\n", ok.error().message.c_str());
            return;
        }
        mapped_ = true;
        std::printf("shmem-backend: mapped %#llx bytes at region 0 offset %#llx\n", (unsigned long long)options_.map_len,
                    (unsigned long long)options_.map_offset);
        std::fflush(stdout);
    }

    void unmap() {
        if (!mapped_) return;
        auto ok = backend_.shmem_unmap(0, options_.map_offset, options_.map_len);
        if (!ok) {
            std::fprintf(stderr, "shmem-backend: unmap failed: %s\n", ok.error().message.c_str());
            return;
        }
        mapped_ = false;
        std::printf("shmem-backend: unmapped region 0 offset %#llx\n", (unsigned long long)options_.map_offset);
        std::fflush(stdout);
    }

    void toggle() { mapped_ ? unmap() : map(); }

    // Times `rounds` map + unmap pairs just above the demo mapping's range (so they never overlap it).
    // Steady: one page at the same place each round, as a DAX window remaps its chunks. vary: the length
    // alternates between one and two pages, so no round can reuse what the front-end kept of the last one.
    void bench(unsigned rounds, bool vary) {
        uint64_t offset = options_.map_offset + options_.map_len;
        std::vector<double> maps, unmaps, trips;
        using Clock = std::chrono::steady_clock;
        for (unsigned i = 0; i < rounds; ++i) {
            uint64_t len = vary && i % 2 ? 8192 : 4096;
            auto t0 = Clock::now();
            auto mapped = backend_.shmem_map(0, memfd_.get(), 0, offset, len, 0);
            auto t1 = Clock::now();
            auto unmapped = backend_.shmem_unmap(0, offset, len);
            auto t2 = Clock::now();
            if (!mapped || !unmapped) {
                std::fprintf(stderr, "shmem-backend: bench round %u failed: %s\n", i,
                             (!mapped ? mapped.error() : unmapped.error()).message.c_str());
                return;
            }
            maps.push_back(us_between(t0, t1));
            unmaps.push_back(us_between(t1, t2));
            trips.push_back(us_between(t0, t2));
        }
        std::printf("shmem-backend: bench%s rounds=%u median_map_us=%.1f median_unmap_us=%.1f median_map_unmap_us=%.1f "
                    "floor_map_unmap_us=%.1f\n",
                    vary ? "-vary" : "", rounds, median_us(maps), median_us(unmaps), median_us(trips),
                    floor_map_unmap_us(rounds, memfd_.get()));
        std::fflush(stdout);
    }

    // One stdin command; false for "quit".
    bool command(const std::string& line) {
        if (line == "map") map();
        else if (line == "unmap") unmap();
        else if (line.rfind("bench", 0) == 0)
            bench(static_cast<unsigned>(std::max(1L, std::strtol(line.c_str() + 5, nullptr, 10))),
                  line.find(" vary") != std::string::npos);
        else if (line == "quit") return false;
        else std::fprintf(stderr, "shmem-backend: commands: map, unmap, bench N [vary], quit\n");
        return true;
    }

private:
    Backend& backend_;
    const Options& options_;
    UniqueFd memfd_;
    bool mapped_ = false;
};

int run(const Options& options) {
    BackendConfig config;
    config.features = (1ull << 32) | kFeatureProtocolFeatures;
    config.num_queues = 1;
    config.shm_sizes = {options.shm_size};
    if (options.trace) config.trace = [](std::string_view line) { std::fprintf(stderr, "%.*s\n", (int)line.size(), line.data()); };

    auto memfd = pattern_memfd(options.map_len);
    if (!memfd) {
        std::fprintf(stderr, "shmem-backend: %s\n", memfd.error().message.c_str());
        return 1;
    }
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGUSR1);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigprocmask(SIG_BLOCK, &signals, nullptr);
    UniqueFd sigfd(::signalfd(-1, &signals, SFD_CLOEXEC));

    std::printf("shmem-backend: device id %u, shm region 0 of %#llx bytes, listening on %s\n", kDeviceId,
                (unsigned long long)options.shm_size, options.socket_path.c_str());
    std::fflush(stdout);
    auto backend = Backend::accept_one(options.socket_path, config, Millis(24 * 3600 * 1000));
    if (!backend) {
        std::fprintf(stderr, "shmem-backend: %s\n", backend.error().message.c_str());
        return 1;
    }
    Demo demo(**backend, options, std::move(*memfd));
    bool driver_ok = false;
    (*backend)->set_status_callback([&](uint8_t status) { driver_ok = (status & kDriverOk) != 0; });
    bool auto_done = false;
    bool stdin_open = true;
    for (;;) {
        pollfd fds[3] = {{(*backend)->fd(), POLLIN, 0}, {sigfd.get(), POLLIN, 0}, {stdin_open ? 0 : -1, POLLIN, 0}};
        if (::poll(fds, 3, -1) < 0 && errno != EINTR) return 1;
        if (fds[0].revents) {
            auto more = (*backend)->handle_one(Millis(5000));
            if (!more) {
                std::fprintf(stderr, "shmem-backend: %s\n", more.error().message.c_str());
                return 1;
            }
            if (!*more) break;
            // Mapped after the reply to SET_STATUS went out, so the front-end is not mid-request.
            if (options.auto_map && driver_ok && !auto_done) {
                auto_done = true;
                if (options.bench) demo.bench(options.bench, false);
                demo.map();
            }
        }
        if (fds[1].revents) {
            signalfd_siginfo info;
            if (::read(sigfd.get(), &info, sizeof(info)) == sizeof(info)) {
                if (info.ssi_signo == SIGUSR1) demo.toggle();
                else break;
            }
        }
        if (fds[2].revents) {
            std::string line;
            if (!std::getline(std::cin, line)) stdin_open = false;
            else if (!demo.command(line)) break;
        }
    }
    std::printf("shmem-backend: front-end gone, exiting\n");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options options;
    CLI::App app{"Demo vhost-user back-end that maps a memfd into VIRTIO shared memory region 0"};
    app.add_option("--socket-path", options.socket_path, "vhost-user socket to listen on")->required();
    app.add_option("--shm-size", options.shm_size, "size of shared memory region 0 in bytes (page multiple)");
    app.add_option("--map-offset", options.map_offset, "offset in region 0 of the demo mapping");
    app.add_option("--map-len", options.map_len, "length of the demo mapping");
    app.add_flag("--auto-map", options.auto_map, "map the pattern once the driver sets DRIVER_OK");
    app.add_option("--bench", options.bench, "with --auto-map: time N map+unmap round trips first");
    app.add_flag("--trace", options.trace, "print every vhost-user message on stderr");
    CLI11_PARSE(app, argc, argv);
    if (options.map_offset + options.map_len + 8192 > options.shm_size || options.map_len == 0 ||
        options.map_len < 8192) {
        std::fprintf(stderr, "shmem-backend: the mapping (at least 8 KiB) and the two bench pages after it must "
                             "fit the region\n");
        return 2;
    }
    return run(options);
}
