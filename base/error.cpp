#include "base/error.h"

#include <cerrno>
#include <cstring>

namespace kite {

Error errno_error(std::string_view what, int err) {
    std::string message(what);
    message += ": ";
    message += std::strerror(err);
    return Error{std::move(message), err, ErrorKind::System};
}

Error errno_error(std::string_view what) { return errno_error(what, errno); }

std::string_view kind_name(ErrorKind kind) {
    switch (kind) {
    case ErrorKind::Invalid: return "invalid";
    case ErrorKind::System: return "system";
    case ErrorKind::Unsupported: return "unsupported";
    }
    return "invalid";
}

}  // namespace kite
