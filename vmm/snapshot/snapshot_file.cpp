// Snapshot files on disk: write through a temporary file + fsync + rename, so a crash never leaves a
// half-written snapshot under the final name; read the whole file, then validate it all.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "memory/fd.h"
#include "vmm/snapshot/snapshot.h"

namespace kite {

Result<void> write_file_atomically(const std::string& path, std::span<const uint8_t> bytes, std::string_view what) {
    std::string tmp = path + ".tmp";
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd) return std::unexpected(errno_error("cannot create " + tmp));
    size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            Error e = errno_error("cannot write " + tmp);
            ::unlink(tmp.c_str());
            return std::unexpected(e);
        }
        done += static_cast<size_t>(n);
    }
    if (::fsync(fd.get()) < 0 || ::rename(tmp.c_str(), path.c_str()) < 0) {
        Error e = errno_error("cannot store " + std::string(what) + " " + path);
        ::unlink(tmp.c_str());
        return std::unexpected(e);
    }
    return {};
}

Result<void> write_snapshot(const std::string& path, const SnapshotData& data) {
    auto bytes = encode_snapshot(data);
    if (!bytes) return std::unexpected(Error{path + ": " + bytes.error().message, 0});
    return write_file_atomically(path, *bytes, "snapshot");
}

Result<SnapshotData> read_snapshot(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return std::unexpected(errno_error("cannot open snapshot " + path));
    struct stat st;
    if (::fstat(fd.get(), &st) < 0) return std::unexpected(errno_error("cannot stat snapshot " + path));
    if (!S_ISREG(st.st_mode)) return fail(path + ": not a regular file");
    std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
    size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = ::read(fd.get(), bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return std::unexpected(errno_error("cannot read snapshot " + path));
        if (n == 0) break;  // the file shrank under us: decode reports it as truncated
        done += static_cast<size_t>(n);
    }
    bytes.resize(done);
    auto data = decode_snapshot(bytes);
    if (!data) return std::unexpected(Error{path + ": " + data.error().message, 0});
    return data;
}

}  // namespace kite
