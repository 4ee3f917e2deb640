// UniqueFd: owns one file descriptor from the moment it exists (received fds included) and closes it
// exactly once. Move-only. BorrowedFd: a file descriptor someone else owns, passed to code that uses it
// for a call and never closes or keeps it beyond its owner's life; interfaces take it instead of a raw
// int so that ownership is visible in every signature.
#pragma once

#include <unistd.h>

#include <utility>

namespace kite {

class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : fd_(fd) {}
    UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        if (this != &other) reset(std::exchange(other.fd_, -1));
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd() { reset(); }

    int get() const { return fd_; }
    bool valid() const { return fd_ >= 0; }
    explicit operator bool() const { return valid(); }
    // Gives up ownership without closing.
    int release() { return std::exchange(fd_, -1); }
    void reset(int fd = -1) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

class BorrowedFd {
public:
    constexpr BorrowedFd() = default;
    constexpr explicit BorrowedFd(int fd) : fd_(fd) {}
    BorrowedFd(const UniqueFd& owner) : fd_(owner.get()) {}  // NOLINT: borrowing from an owner is implicit

    constexpr int get() const { return fd_; }
    constexpr bool valid() const { return fd_ >= 0; }
    constexpr explicit operator bool() const { return valid(); }

private:
    int fd_ = -1;
};

}  // namespace kite
