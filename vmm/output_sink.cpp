#include "vmm/output_sink.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace kite {

Result<std::shared_ptr<OutputSink>> OutputSink::open(const OutputConfig& config, std::string_view what) {
    switch (config.mode) {
    case OutputConfig::Mode::Off: return std::shared_ptr<OutputSink>(new OutputSink(UniqueFd(), -1));
    case OutputConfig::Mode::Stdio: return std::shared_ptr<OutputSink>(new OutputSink(UniqueFd(), STDOUT_FILENO));
    case OutputConfig::Mode::File: {
        int fd = ::open(config.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) return std::unexpected(errno_error(std::string(what) + " output file " + config.path));
        return std::shared_ptr<OutputSink>(new OutputSink(UniqueFd(fd), fd));
    }
    }
    return fail("unknown output mode");
}

void OutputSink::write(std::span<const uint8_t> bytes) {
    if (fd_ < 0) return;
    while (!bytes.empty()) {
        ssize_t n = ::write(fd_, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        bytes = bytes.subspan(static_cast<size_t>(n));
    }
}

}  // namespace kite
