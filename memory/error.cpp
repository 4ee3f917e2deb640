#include "memory/error.h"

#include <cerrno>
#include <cstring>

namespace kite {

Error errno_error(std::string_view what, int err) {
    std::string message(what);
    message += ": ";
    message += std::strerror(err);
    return Error{std::move(message), err};
}

Error errno_error(std::string_view what) { return errno_error(what, errno); }

}  // namespace kite
