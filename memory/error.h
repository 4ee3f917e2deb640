// The error type every fallible Kite operation returns inside std::expected.
#pragma once

#include <expected>
#include <string>
#include <string_view>

namespace kite {

struct Error {
    std::string message;
    int code = 0;  // errno value when the failure came from a system call, else 0
};

template <class T>
using Result = std::expected<T, Error>;

// Builds an Error from the current errno: "<what>: <strerror(errno)>".
Error errno_error(std::string_view what);
// Same, from an explicit errno value (for APIs such as io_uring that return -errno).
Error errno_error(std::string_view what, int err);

inline std::unexpected<Error> fail(std::string message) {
    return std::unexpected(Error{std::move(message), 0});
}

}  // namespace kite
