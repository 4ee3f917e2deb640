// A temporary image file for virtio-blk tests, removed on destruction.
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace kite::test {

class TempImage {
public:
    explicit TempImage(size_t bytes, char fill = 0) {
        char name[] = "/tmp/kite-blk-XXXXXX";
        int fd = ::mkstemp(name);
        path_ = name;
        std::vector<char> data(bytes, fill);
        [[maybe_unused]] ssize_t n = ::write(fd, data.data(), data.size());
        ::close(fd);
    }
    ~TempImage() { ::unlink(path_.c_str()); }
    TempImage(const TempImage&) = delete;
    TempImage& operator=(const TempImage&) = delete;

    const std::string& path() const { return path_; }

    std::vector<char> read(size_t offset, size_t len) const {
        std::vector<char> out(len);
        int fd = ::open(path_.c_str(), O_RDONLY);
        [[maybe_unused]] ssize_t n = ::pread(fd, out.data(), len, off_t(offset));
        ::close(fd);
        return out;
    }
    void write(size_t offset, const std::vector<char>& data) const {
        int fd = ::open(path_.c_str(), O_WRONLY);
        [[maybe_unused]] ssize_t n = ::pwrite(fd, data.data(), data.size(), off_t(offset));
        ::close(fd);
    }

private:
    std::string path_;
};

}  // namespace kite::test
