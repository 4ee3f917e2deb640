#include "vmm/sandbox.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "vmm/landlock.h"
#include "vmm/landlock_paths.h"
#include "vmm/seccomp.h"

namespace kite {

Result<void> install_sandbox(const VmConfig& config) {
    const auto start = std::chrono::steady_clock::now();
    bool landlocked = false;
    if (config.seccomp == SeccompMode::On && !seccomp_unavailable_in_this_build()) {
        auto r = install_landlock(landlock_paths(config));
        if (!r) return std::unexpected(r.error());
        landlocked = *r;
    }
    if (auto r = install_seccomp(config.seccomp); !r) return r;
    if (config.seccomp != SeccompMode::Off)
        spdlog::info("sandbox: {}seccomp installed in {} us", landlocked ? "Landlock and " : "",
                     std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start)
                         .count());
    return {};
}

}  // namespace kite
