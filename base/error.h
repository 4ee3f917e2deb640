// The error type every fallible Kite operation returns inside std::expected.
#pragma once

#include <expected>
#include <string>
#include <string_view>

namespace kite {

// What kind of failure an Error is, so that callers can act on it without parsing the message (the
// control API reports it; a caller may retry a System error but never an Invalid one).
enum class ErrorKind {
    Invalid,      // the input is wrong: a config value, a file's contents, a guest or peer request
    System,       // a system call failed (Error::code holds its errno)
    Unsupported,  // the host lacks what is needed (a KVM capability, a kernel feature)
};

struct Error {
    std::string message;
    int code = 0;  // errno value when the failure came from a system call, else 0
    ErrorKind kind = ErrorKind::Invalid;
};

template <class T>
using Result = std::expected<T, Error>;

// Builds an Error of kind System from the current errno: "<what>: <strerror(errno)>".
Error errno_error(std::string_view what);
// Same, from an explicit errno value (for APIs such as io_uring that return -errno).
Error errno_error(std::string_view what, int err);

// An Invalid error: the input was refused for the reason given.
inline std::unexpected<Error> fail(std::string message) {
    return std::unexpected(Error{std::move(message), 0, ErrorKind::Invalid});
}
// An Unsupported error: this host cannot do what was asked.
inline std::unexpected<Error> unsupported(std::string message) {
    return std::unexpected(Error{std::move(message), 0, ErrorKind::Unsupported});
}

// The same error with "<context>: " before its message; code and kind are kept.
inline Error with_context(std::string_view context, Error error) {
    error.message.insert(0, std::string(context) + ": ");
    return error;
}

// The name of a kind as the control API and logs spell it: "invalid", "system", "unsupported".
std::string_view kind_name(ErrorKind kind);

}  // namespace kite
