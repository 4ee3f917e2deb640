// `kite pause|resume|snapshot FILE|shutdown|status --api-socket PATH`: sends one control request and
// prints the response. Exit status 0 when the VMM answered ok, 1 when it refused, 2 when it is unreachable.
#pragma once

#include <string>
#include <vector>

namespace kite {

int run_control_client(const std::string& socket_path, const std::vector<std::string>& args);

}  // namespace kite
