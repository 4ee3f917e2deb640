// Snapshot files on disk: write through a temporary file + fsync + rename, so a crash never leaves a
// half-written snapshot under the final name; read and validate it all, guest pages moving with direct I/O.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <string>
#include <vector>

#include "base/fd.h"
#include "vmm/snapshot/snapshot.h"
#include "vmm/snapshot/snapshot_source.h"

namespace kite {

namespace {

constexpr uint64_t kPage = kMirrorPageSize;

bool page_aligned(const void* addr, uint64_t size, uint64_t at) {
    return (reinterpret_cast<uintptr_t>(addr) | size | at) % kPage == 0;
}

// Writes iov at file offset `at`, resuming after short writes.
Result<void> pwrite_all(int fd, std::vector<iovec> iov, uint64_t at) {
    iovec* next = iov.data();
    int count = static_cast<int>(iov.size());
    while (count > 0) {
        ssize_t n = ::pwritev(fd, next, count, static_cast<off_t>(at));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return std::unexpected(errno_error("write"));
        if (n == 0) return std::unexpected(errno_error("write", EIO));
        at += static_cast<uint64_t>(n);
        for (auto left = static_cast<size_t>(n); left > 0;) {
            size_t part = std::min(left, next->iov_len);
            next->iov_base = static_cast<uint8_t*>(next->iov_base) + part;
            next->iov_len -= part;
            left -= part;
            if (next->iov_len == 0) ++next, --count;
        }
        while (count > 0 && next->iov_len == 0) ++next, --count;
    }
    return {};
}

// Writes every piece in order from offset 0, in batches of up to IOV_MAX pieces that go the same way:
// whole pages at page-aligned offsets through `direct` (an O_DIRECT descriptor of the same file, or -1),
// everything else through `fd`. A file system that refuses a direct write gets it through `fd`.
Result<void> write_all(int fd, int direct, std::span<const std::span<const uint8_t>> pieces) {
    uint64_t at = 0;
    size_t i = 0;
    std::vector<iovec> iov;
    while (i < pieces.size()) {
        const uint64_t start = at;
        const bool aligned = direct >= 0 && page_aligned(pieces[i].data(), pieces[i].size(), at);
        iov.clear();
        for (; i < pieces.size() && iov.size() < IOV_MAX; ++i) {
            auto piece = pieces[i];
            if (piece.empty()) continue;
            if ((direct >= 0 && page_aligned(piece.data(), piece.size(), at)) != aligned) break;
            iov.push_back({const_cast<uint8_t*>(piece.data()), piece.size()});
            at += piece.size();
        }
        auto r = pwrite_all(aligned ? direct : fd, iov, start);
        if (!r && aligned && r.error().code == EINVAL) {
            direct = -1;
            r = pwrite_all(fd, iov, start);
        }
        if (!r) return r;
    }
    return {};
}

// A snapshot file read piece by piece: headers and small sections through the page cache, runs of guest
// pages (page-aligned in the file since version 2) with direct I/O straight into guest RAM.
class FileSource final : public SnapshotSource {
public:
    FileSource(int fd, int direct, uint64_t size) : SnapshotSource(size), fd_(fd), direct_(direct) {}

    Result<void> read(std::span<uint8_t> out) override { return read_at(fd_, out.data(), out.size()); }

    Result<void> read_pages(std::span<std::byte> out) override {
        const uint64_t start = pos_;
        if (direct_ >= 0 && page_aligned(out.data(), out.size(), pos_)) {
            auto r = read_at(direct_, out.data(), out.size());
            if (r || r.error().code != EINVAL) return r;
            direct_ = -1;  // the file system refused: the page cache it is
        }
        auto rest = out.subspan(pos_ - start);
        // Faulting fresh guest RAM in page by page while copying costs more than populating it in one go.
        ::madvise(rest.data(), rest.size(), MADV_POPULATE_WRITE);
        return read_at(fd_, rest.data(), rest.size());
    }

private:
    Result<void> read_at(int fd, void* out, size_t n) {
        auto* p = static_cast<uint8_t*>(out);
        while (n > 0) {
            ssize_t got = ::pread(fd, p, n, static_cast<off_t>(pos_));
            if (got < 0 && errno == EINTR) continue;
            if (got < 0) return std::unexpected(errno_error("read"));
            if (got == 0) return fail("the file shrank while it was read (truncated)");
            p += got;
            n -= static_cast<size_t>(got);
            pos_ += static_cast<uint64_t>(got);
        }
        return {};
    }

    int fd_;
    int direct_;
};

// Creates `tmp` afresh, mode 0600: never through a symlink someone planted there (it would receive guest
// memory) nor into a file that exists. What is at `tmp` already (a crashed run's leftover, or a planted
// link) is removed, not followed; if something reappears at once, that is an error, not a retry loop.
Result<UniqueFd> create_private(const std::string& tmp) {
    for (int attempt = 0;; ++attempt) {
        UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (fd) return fd;
        if (errno != EEXIST || attempt == 1 || ::unlink(tmp.c_str()) != 0)
            return std::unexpected(errno_error("cannot create " + tmp));
    }
}

}  // namespace

Result<void> write_file_atomically(const std::string& path, std::span<const std::span<const uint8_t>> pieces,
                                   std::string_view what) {
    std::string tmp = path + ".tmp";
    auto created = create_private(tmp);
    if (!created) return std::unexpected(created.error());
    UniqueFd fd = std::move(*created);
    // The same file again for direct I/O, reopened through our descriptor (the name could point elsewhere
    // by now); where the file system or /proc has none, everything goes through fd.
    const std::string self = "/proc/self/fd/" + std::to_string(fd.get());
    UniqueFd direct(::open(self.c_str(), O_WRONLY | O_CLOEXEC | O_DIRECT));
    if (auto ok = write_all(fd.get(), direct ? direct.get() : -1, pieces); !ok) {
        Error e{"cannot write " + tmp + ": " + ok.error().message, ok.error().code};
        ::unlink(tmp.c_str());
        return std::unexpected(e);
    }
    if (::fsync(fd.get()) < 0 || ::rename(tmp.c_str(), path.c_str()) < 0) {
        Error e = errno_error("cannot store " + std::string(what) + " " + path);
        ::unlink(tmp.c_str());
        return std::unexpected(e);
    }
    return {};
}

Result<void> write_file_atomically(const std::string& path, std::span<const uint8_t> bytes, std::string_view what) {
    return write_file_atomically(path, std::span(&bytes, 1), what);
}

Result<void> write_snapshot(const std::string& path, const SnapshotData& data) {
    auto pieces = encode_snapshot_pieces(data);
    if (!pieces) return std::unexpected(Error{path + ": " + pieces.error().message, 0});
    return write_file_atomically(path, pieces->spans, "snapshot");
}

Result<SnapshotData> read_snapshot(const std::string& path, const MemoryTarget& target) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return std::unexpected(errno_error("cannot open snapshot " + path));
    struct stat st;
    if (::fstat(fd.get(), &st) < 0) return std::unexpected(errno_error("cannot stat snapshot " + path));
    if (!S_ISREG(st.st_mode)) return fail(path + ": not a regular file");
    UniqueFd direct(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT));
    FileSource in(fd.get(), direct ? direct.get() : -1, static_cast<uint64_t>(st.st_size));
    auto data = decode_from(in, target, /*copy_pages=*/true);
    if (!data) return std::unexpected(Error{path + ": " + data.error().message, 0});
    return data;
}

}  // namespace kite
