// The block engine's ring accepts only the operations it submits: what runs inside io_uring is out of
// the seccomp filter's reach.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>

#include "devices/virtio/block_ring.h"
#include "temp_image.h"

using namespace kite;
using namespace kite::test;

namespace {

// A ring set up the way the block engine sets up its own; skips (false) where io_uring is unavailable.
struct Ring {
    io_uring ring{};
    int event = ::eventfd(0, EFD_CLOEXEC);
    bool ready = false;
    Ring() {
        auto r = setup_block_ring(ring, 8, event);
        ready = r.has_value();
        if (!ready) MESSAGE("io_uring unavailable here (" << r.error().message << "): nothing to test");
    }
    ~Ring() {
        if (ready) io_uring_queue_exit(&ring);
        ::close(event);
    }
    // Submits the prepared SQE and returns its completion's result.
    int run(void (*prep)(io_uring_sqe*, void*), void* arg) {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring);
        REQUIRE(sqe != nullptr);
        prep(sqe, arg);
        REQUIRE(io_uring_submit(&ring) == 1);
        io_uring_cqe* cqe = nullptr;
        REQUIRE(io_uring_wait_cqe(&ring, &cqe) == 0);
        int res = cqe->res;
        io_uring_cqe_seen(&ring, cqe);
        return res;
    }
};

struct ReadArgs {
    int fd;
    iovec iov;
};

}  // namespace

TEST_CASE("the block ring runs readv but refuses openat, SQE flags and new registrations") {
    Ring r;
    if (!r.ready) return;
    TempImage image(4096, 'k');
    int fd = ::open(image.path().c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    char buf[16] = {};
    ReadArgs args{fd, {buf, sizeof buf}};

    int read = r.run([](io_uring_sqe* sqe, void* a) {
        auto* ra = static_cast<ReadArgs*>(a);
        io_uring_prep_readv(sqe, ra->fd, &ra->iov, 1, 0);
    }, &args);
    int opened = r.run([](io_uring_sqe* sqe, void*) { io_uring_prep_openat(sqe, AT_FDCWD, "/etc/passwd", O_RDONLY, 0); },
                       nullptr);
    int flagged = r.run([](io_uring_sqe* sqe, void* a) {
        auto* ra = static_cast<ReadArgs*>(a);
        io_uring_prep_readv(sqe, ra->fd, &ra->iov, 1, 0);
        io_uring_sqe_set_flags(sqe, IOSQE_ASYNC);
    }, &args);
    int files[] = {fd};
    int registered = io_uring_register_files(&r.ring, files, 1);

    CHECK(read == int(sizeof buf));
    CHECK(std::memcmp(buf, "kkkkkkkkkkkkkkkk", sizeof buf) == 0);
    CHECK(opened == -EACCES);
    CHECK(flagged == -EACCES);
    CHECK(registered == -EACCES);
    if (opened >= 0) ::close(opened);
    ::close(fd);
}
