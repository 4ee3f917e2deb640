// Snapshot files on disk: write through a temporary file + fsync + rename, so a crash never leaves a
// half-written snapshot under the final name; read the whole file, then validate it all.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <climits>
#include <memory>

#include "memory/fd.h"
#include "memory/host_mapping.h"
#include "vmm/snapshot/snapshot.h"

namespace kite {

namespace {

// Writes every piece in order (writev, IOV_MAX at a time, resuming after short writes).
Result<void> write_all(int fd, std::span<const std::span<const uint8_t>> pieces) {
    size_t next = 0, offset = 0;  // the first byte not yet written: pieces[next], offset bytes in
    while (true) {
        while (next < pieces.size() && pieces[next].size() == offset) {
            offset = 0;
            ++next;
        }
        if (next == pieces.size()) return {};
        iovec iov[IOV_MAX];
        int count = 0;
        for (size_t i = next; i < pieces.size() && count < IOV_MAX; ++i) {
            size_t skip = i == next ? offset : 0;
            iov[count++] = {const_cast<uint8_t*>(pieces[i].data()) + skip, pieces[i].size() - skip};
        }
        ssize_t n = ::writev(fd, iov, count);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return std::unexpected(errno_error("write"));
        auto left = static_cast<size_t>(n);
        while (next < pieces.size() && left >= pieces[next].size() - offset) {
            left -= pieces[next].size() - offset;
            offset = 0;
            ++next;
        }
        offset += left;
    }
}

}  // namespace

Result<void> write_file_atomically(const std::string& path, std::span<const std::span<const uint8_t>> pieces,
                                   std::string_view what) {
    std::string tmp = path + ".tmp";
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd) return std::unexpected(errno_error("cannot create " + tmp));
    if (auto ok = write_all(fd.get(), pieces); !ok) {
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

Result<SnapshotData> read_snapshot(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return std::unexpected(errno_error("cannot open snapshot " + path));
    struct stat st;
    if (::fstat(fd.get(), &st) < 0) return std::unexpected(errno_error("cannot stat snapshot " + path));
    if (!S_ISREG(st.st_mode)) return fail(path + ": not a regular file");
    // Read into memory the kernel populates in one go (MAP_POPULATE): faulting a gigabyte in page by page
    // costs more than reading it, far more under a hypervisor such as PVM. Read, not mapped: a file
    // truncated meanwhile must be an error, not SIGBUS.
    auto size = static_cast<size_t>(st.st_size);
    HostMapping buffer;
    if (size != 0) {
        void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (p == MAP_FAILED) return std::unexpected(errno_error("cannot allocate memory to read snapshot " + path));
        buffer = HostMapping(p, size);
    }
    auto* bytes = reinterpret_cast<uint8_t*>(buffer.data());
    size_t done = 0;
    while (done < size) {
        ssize_t n = ::read(fd.get(), bytes + done, size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return std::unexpected(errno_error("cannot read snapshot " + path));
        if (n == 0) break;  // the file shrank under us: decode reports it as truncated
        done += static_cast<size_t>(n);
    }
    // The pages stay in the read buffer (no second copy of the guest's memory); the data keeps it.
    auto data = decode_snapshot(std::span<const uint8_t>(bytes, done), /*copy_pages=*/false);
    if (!data) return std::unexpected(Error{path + ": " + data.error().message, 0});
    data->input = std::make_shared<HostMapping>(std::move(buffer));
    return data;
}

}  // namespace kite
