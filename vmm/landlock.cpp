#include "vmm/landlock.h"

#include <fcntl.h>
#include <linux/landlock.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "base/fd.h"

namespace kite {

namespace {

// The rights by the ABI version that brought them; spelled out because Debian 12's linux/landlock.h
// stops at version 2, and the kernel refuses rights it does not know (so only the supported ones are
// asked for).
constexpr uint64_t kFsRightsAbi1 = (1ull << 13) - 1;  // EXECUTE .. MAKE_SYM
constexpr uint64_t kFsRefer = 1ull << 13;             // ABI 2
constexpr uint64_t kFsTruncate = 1ull << 14;          // ABI 3
constexpr uint64_t kFsIoctlDev = 1ull << 15;          // ABI 5
constexpr uint64_t kNetBindTcp = 1ull << 0, kNetConnectTcp = 1ull << 1;               // ABI 4
constexpr uint64_t kScopeAbstractUnixSocket = 1ull << 0, kScopeSignal = 1ull << 1;  // ABI 6

// struct landlock_ruleset_attr as of ABI 6; the size passed tells the kernel which fields exist.
struct RulesetAttr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

// What Kite does beneath a writable directory: create a snapshot's temporary file, write it, rename it
// over the old snapshot, remove it on failure (and the control socket at exit).
constexpr uint64_t kWritableDirRights =
    LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_REMOVE_FILE;

}  // namespace

int landlock_abi() {
    long abi = ::syscall(__NR_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return abi < 0 ? 0 : static_cast<int>(abi);
}

Result<bool> install_landlock(const LandlockPaths& paths) {
    long abi = ::syscall(__NR_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi < 0) {
        spdlog::info("landlock: not available in this kernel ({}); the seccomp filter alone applies",
                     std::strerror(errno));
        return false;
    }
    RulesetAttr attr{kFsRightsAbi1, 0, 0};
    size_t attr_size = sizeof attr.handled_access_fs;
    if (abi >= 2) attr.handled_access_fs |= kFsRefer;
    if (abi >= 3) attr.handled_access_fs |= kFsTruncate;
    if (abi >= 4) {
        attr.handled_access_net = kNetBindTcp | kNetConnectTcp;
        attr_size += sizeof attr.handled_access_net;
    }
    if (abi >= 5) attr.handled_access_fs |= kFsIoctlDev;
    if (abi >= 6) {
        attr.scoped = kScopeAbstractUnixSocket | kScopeSignal;
        attr_size += sizeof attr.scoped;
    }
    UniqueFd ruleset(static_cast<int>(::syscall(__NR_landlock_create_ruleset, &attr, attr_size, 0)));
    if (!ruleset) return std::unexpected(errno_error("landlock: cannot create the ruleset"));
    for (const std::string& dir : paths.writable_dirs) {
        UniqueFd parent(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (!parent) return std::unexpected(errno_error("landlock: cannot open " + dir));
        landlock_path_beneath_attr beneath{};
        beneath.allowed_access = kWritableDirRights;
        beneath.parent_fd = parent.get();
        if (::syscall(__NR_landlock_add_rule, ruleset.get(), LANDLOCK_RULE_PATH_BENEATH, &beneath, 0) != 0)
            return std::unexpected(errno_error("landlock: cannot allow writing beneath " + dir));
    }
    // Required to sandbox oneself without privileges; the seccomp filter sets it too.
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return std::unexpected(errno_error("landlock: no_new_privs"));
    if (::syscall(__NR_landlock_restrict_self, ruleset.get(), 0) != 0)
        return std::unexpected(errno_error("landlock: cannot restrict the process"));
    spdlog::info("landlock: ABI {}, files writable beneath {} director{}", abi, paths.writable_dirs.size(),
                 paths.writable_dirs.size() == 1 ? "y" : "ies");
    return true;
}

}  // namespace kite
