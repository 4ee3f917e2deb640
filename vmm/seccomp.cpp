#include "vmm/seccomp.h"

#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <ucontext.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <vector>

#include "devices/virtio/tap.h"
#include "vmm/host_console.h"
#include "vmm/kvm/kvm_ioctls.h"
#include "vmm/syscall_names.h"

namespace kite {

namespace {

// What a running Kite calls, by name (resolved for this architecture; names this libseccomp does not
// know are skipped). Grouped by purpose.
constexpr const char* kAllowed[] = {
    // file and descriptor I/O (disks, snapshots, serial files, sockets' fds)
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2",
    "lseek", "close", "close_range", "openat", "open", "fstat", "newfstatat", "stat", "lstat", "statx",
    "fstatfs", "statfs", "fsync", "fdatasync", "ftruncate", "fallocate", "fadvise64", "rename", "renameat",
    "renameat2", "unlink", "unlinkat", "readlink", "readlinkat", "getdents64", "access", "faccessat",
    "faccessat2", "fcntl", "dup", "dup2", "dup3", "flock", "memfd_create",
    // memory (guest RAM, shared memory windows, the mirror VM, allocators)
    "mmap", "munmap", "mprotect", "madvise", "mremap", "brk", "mincore", "msync",
    // Unix sockets (control API, vhost-user front-end and its back-end channel); socket and socketpair
    // are in the argument rules below
    "connect", "accept", "accept4", "bind", "listen", "sendto", "recvfrom",
    "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown", "getsockopt", "setsockopt", "getsockname",
    "getpeername",
    // event loop
    "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll", "select",
    "pselect6", "eventfd2", "timerfd_create", "timerfd_settime", "timerfd_gettime", "pipe", "pipe2",
    "signalfd4",
    // threads and synchronization
    "futex", "set_robust_list", "get_robust_list", "rseq", "set_tid_address",
    "sched_yield", "sched_getaffinity", "gettid", "getpid", "getppid", "tgkill", "tkill", "exit",
    "exit_group", "restart_syscall", "prctl", "arch_prctl", "membarrier", "getrandom",
    // signals (vCPU kicks, the mirror watchdog, SIGINT/SIGTERM)
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "rt_sigtimedwait", "rt_sigpending",
    // time
    "clock_gettime", "clock_getres", "gettimeofday", "time", "nanosleep", "clock_nanosleep", "timer_create",
    "timer_settime", "timer_gettime", "timer_delete", "timer_getoverrun",
    // process facts
    "getrlimit", "prlimit64", "getrusage", "sysinfo", "uname", "getuid", "geteuid", "getgid", "getegid",
    // io_uring (virtio-blk): its ring is set up before the filter goes in (devices/virtio/block_ring.h),
    // so no ring without restrictions can be made afterwards
    "io_uring_enter", "io_uring_register",
};

// Calls allowed with one argument equal to one of a few values; everything else about them is refused
// like a call outside the list. Only the low 32 bits of the argument are compared where the kernel reads
// an int (ioctl's request), so a sign-extended request from a caller still matches.
struct ArgRule {
    const char* name;
    unsigned arg;
    uint64_t value;
    bool low_32_bits;
};

// The flags glibc's pthread_create passes to clone (sysdeps/unix/sysv/linux/createthread.c): a thread,
// never a process and never a new namespace. clone3 keeps its flags in memory, out of the filter's
// reach, so it answers ENOSYS and glibc falls back to clone.
constexpr uint64_t kThreadCloneFlags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SYSVSEM | CLONE_SIGHAND |
                                       CLONE_THREAD | CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID;

std::vector<ArgRule> arg_rules() {
    std::vector<ArgRule> rules;
    // ioctl: KVM, the tap's offloads, the console's terminal modes and asio's FIONBIO; not TIOCSTI
    // (typing into the terminal Kite was started from), not any other device's requests.
    auto ioctls = [&](auto requests) {
        for (unsigned long r : requests) rules.push_back({"ioctl", 1, r, true});
    };
    ioctls(kKvmIoctlRequests);
    ioctls(tap_ioctl_requests_after_open());
    ioctls(HostConsole::ioctl_requests());
    ioctls(std::array{static_cast<unsigned long>(FIONBIO)});
    // Unix sockets only: no netlink (routes, firewall), no packet sockets, no network.
    rules.push_back({"socket", 0, AF_UNIX, true});
    rules.push_back({"socketpair", 0, AF_UNIX, true});
    rules.push_back({"clone", 0, kThreadCloneFlags, false});
    return rules;
}

void put(const char* s) {
    for (size_t n = std::strlen(s); n > 0;) {
        ssize_t w = ::write(STDERR_FILENO, s, n);
        if (w <= 0) return;
        s += w;
        n -= static_cast<size_t>(w);
    }
}

// Writes v in `base` (10 or 16) with no allocation: the SIGSYS handler may only write and exit.
void put_number(uint64_t v, unsigned base) {
    char digits[24];
    int at = sizeof digits - 1;
    digits[at] = '\0';
    do digits[--at] = "0123456789abcdef"[v % base]; while ((v /= base) != 0 && at > 2);
    if (base == 16) {
        digits[--at] = 'x';
        digits[--at] = '0';
    }
    put(digits + at);
}

void on_sigsys(int, siginfo_t* info, void* context) {
    int nr = info->si_syscall;
    put("kite: error: seccomp: the VMM made system call ");
    put_number(nr < 0 ? 0u : static_cast<unsigned>(nr), 10);
    if (nr >= 0 && static_cast<size_t>(nr) < std::size(kSyscallNames) && kSyscallNames[nr][0] != '\0') {
        put(" (");
        put(kSyscallNames[nr]);
        put(")");
    }
    // The first two arguments tell which ioctl request, socket domain or clone flags were refused.
    const auto& regs = static_cast<const ucontext_t*>(context)->uc_mcontext.gregs;
    put(", which its filter does not allow (first arguments ");
    put_number(static_cast<uint64_t>(regs[REG_RDI]), 16);
    put(", ");
    put_number(static_cast<uint64_t>(regs[REG_RSI]), 16);
    put("). This is a Kite bug: please report it; --seccomp off works around it. (exit status 1)\n");
    ::_exit(1);
}

}  // namespace

bool seccomp_unavailable_in_this_build() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
    return true;
#else
    return false;
#endif
#else
    return false;
#endif
}

Result<void> install_seccomp(SeccompMode mode) {
    if (mode == SeccompMode::Off) return {};
    if (mode == SeccompMode::On && seccomp_unavailable_in_this_build()) {
        spdlog::info("seccomp: no filter in a sanitizer build (its runtime needs calls the filter refuses)");
        return {};
    }
    if (mode == SeccompMode::On) {
        struct sigaction sa{};
        sa.sa_sigaction = on_sigsys;
        sa.sa_flags = SA_SIGINFO;
        if (::sigaction(SIGSYS, &sa, nullptr) != 0) return std::unexpected(errno_error("seccomp: sigaction(SIGSYS)"));
    }
    scmp_filter_ctx ctx = seccomp_init(mode == SeccompMode::On ? SCMP_ACT_TRAP : SCMP_ACT_LOG);
    if (ctx == nullptr) return fail("seccomp: seccomp_init failed");
    struct Release {
        scmp_filter_ctx ctx;
        ~Release() { seccomp_release(ctx); }
    } release{ctx};
    if (int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1); rc != 0)
        return std::unexpected(errno_error("seccomp: cannot apply the filter to every thread", -rc));
    size_t allowed = 0;
    for (const char* name : kAllowed) {
        int nr = seccomp_syscall_resolve_name(name);
        if (nr == __NR_SCMP_ERROR) continue;
        if (int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0); rc != 0)
            return std::unexpected(errno_error(std::string("seccomp: cannot allow ") + name, -rc));
        ++allowed;
    }
    const std::vector<ArgRule> rules = arg_rules();
    for (const ArgRule& rule : rules) {
        scmp_arg_cmp cmp = rule.low_32_bits ? scmp_arg_cmp{rule.arg, SCMP_CMP_MASKED_EQ, 0xffffffffull, rule.value}
                                            : scmp_arg_cmp{rule.arg, SCMP_CMP_EQ, rule.value, 0};
        if (int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, seccomp_syscall_resolve_name(rule.name), 1, cmp); rc != 0)
            return std::unexpected(errno_error(std::string("seccomp: cannot allow ") + rule.name, -rc));
    }
    if (int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0); rc != 0)
        return std::unexpected(errno_error("seccomp: cannot turn clone3 into ENOSYS", -rc));
    if (int rc = seccomp_load(ctx); rc != 0)
        return std::unexpected(errno_error("seccomp: the kernel refused the filter", -rc));
    spdlog::info("seccomp: filter {} ({} system calls allowed, {} more with fixed arguments)",
                 mode == SeccompMode::On ? "enforced" : "logging", allowed, rules.size());
    return {};
}

}  // namespace kite
