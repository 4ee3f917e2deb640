#include "vmm/arch/x86_64/boot/image_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace kite::boot {

Result<ImageFile> open_image_file(const std::filesystem::path& path, const std::string& what) {
    std::string label = what + " " + path.string();
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return std::unexpected(errno_error(label));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return std::unexpected(errno_error(label));
    if (!S_ISREG(st.st_mode)) return fail(label + ": not a regular file");
    if (st.st_size == 0) return fail(label + ": file is empty");
    return ImageFile{std::move(fd), static_cast<uint64_t>(st.st_size), std::move(label)};
}

Result<void> read_image_file(const ImageFile& file, std::span<std::byte> out) {
    if (out.size() != file.size) return fail(file.label + ": buffer size does not match the file size");
    uint64_t done = 0;
    while (done < out.size()) {
        ssize_t n = ::pread(file.fd.get(), out.data() + done, out.size() - done, static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return std::unexpected(errno_error(file.label));
        if (n == 0) return fail(file.label + ": file shrank while reading");
        done += static_cast<uint64_t>(n);
    }
    return {};
}

Result<std::vector<std::byte>> read_whole_image(const std::filesystem::path& path, const std::string& what) {
    auto file = open_image_file(path, what);
    if (!file) return std::unexpected(file.error());
    std::vector<std::byte> bytes(file->size);
    if (auto ok = read_image_file(*file, bytes); !ok) return std::unexpected(ok.error());
    return bytes;
}

}  // namespace kite::boot
