// kite: the executable. Parses the command line (vmm/config/cli.h), builds the VM (vmm/builder.h) and runs it.
// With --restore FILE the VM is built the same way but, instead of a kernel, gets FILE's memory and
// state (vmm/snapshot/vm_snapshot.h). With --api-socket PATH it serves the control API (vmm/control/vm_control.h).
// Exit status: the guest's choice (poweroff/reboot 0, debug-exit port value), 2 for any configuration or
// set-up error (nothing was started), 1 for a VMM failure while running, 128+N when stopped by signal N.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <optional>
#include <string>

#include "vmm/builder.h"
#include "vmm/config/cli.h"
#include "vmm/control/client.h"
#include "vmm/control/vm_control.h"
#include "vmm/sandbox.h"
#include "vmm/snapshot/key_file.h"
#include "vmm/snapshot/snapshot.h"
#include "vmm/snapshot/vm_snapshot.h"

namespace {

constexpr int kExitConfigError = 2;

void setup_logging(const std::string& level) {
    auto logger = spdlog::stderr_color_mt("kite");
    logger->set_pattern("kite: %^%l%$: %v");
    spdlog::set_default_logger(logger);
    spdlog::set_level(spdlog::level::from_str(level));
}

double ms_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

// Reads `path` into the built, not yet started `vm` and applies it; false (after saying why) if the file
// is refused or does not fit.
bool restore(kite::Vm& vm, const std::string& path) {
    auto read_start = std::chrono::steady_clock::now();
    auto snapshot = kite::read_snapshot(path, kite::restore_target(vm));
    const double read_ms = ms_since(read_start);
    if (!snapshot) {
        std::fprintf(stderr, "kite: cannot restore: %s\n", snapshot.error().message.c_str());
        return false;
    }
    std::optional<kite::MirrorKey> key;
    if (snapshot->flags & kite::kSnapshotFlagSealedMemory) {
        auto k = kite::read_key_file(kite::key_file_path(path));
        if (!k) {
            std::fprintf(stderr, "kite: cannot restore a mirror snapshot without its key: %s\n",
                         k.error().message.c_str());
            return false;
        }
        key = *k;
    }
    auto apply_start = std::chrono::steady_clock::now();
    if (auto r = kite::apply_snapshot(vm, *snapshot, key); !r) {
        std::fprintf(stderr, "kite: cannot restore %s: %s\n", path.c_str(), r.error().message.c_str());
        return false;
    }
    spdlog::info("restored {} ({} MiB{}): file read and checked in {:.1f} ms, state applied in {:.1f} ms", path,
                 vm.ram().ram_size() >> 20, key ? ", through the mirror VM" : "", read_ms, ms_since(apply_start));
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    // SIGUSR1 asks a running VM for its state (Vm::run); one that arrives before then must not kill us.
    std::signal(SIGUSR1, SIG_IGN);
    auto command = kite::parse_cli(argc, argv);
    if (!command) {
        std::fprintf(stderr, "kite: %s\n", command.error().message.c_str());
        return kExitConfigError;
    }
    using Kind = kite::CliCommand::Kind;
    switch (command->kind) {
    case Kind::Help:
    case Kind::Version:
    case Kind::Validate:
        std::fputs(command->output.c_str(), stdout);
        if (!command->output.empty() && command->output.back() != '\n') std::fputc('\n', stdout);
        return 0;
    case Kind::Control: return kite::run_control_client(command->config.control_socket, command->control_args);
    case Kind::Run: break;
    }

    setup_logging(command->config.log_level);
    const kite::VmConfig& config = command->config;
    // A snapshot to resume is read into the built VM before any vCPU runs, and validated whole: its
    // pages go straight into guest RAM, and a truncated or corrupt file is a configuration error after
    // which nothing runs.
    if (!config.restore.empty()) {
        if (std::string why = kite::snapshot_refusal(config); !why.empty()) {
            std::fprintf(stderr, "kite: cannot restore: %s\n", why.c_str());
            return kExitConfigError;
        }
    }
    auto vm = kite::VmBuilder(config).build();
    if (!vm) {
        std::fprintf(stderr, "kite: %s\n", vm.error().message.c_str());
        return kExitConfigError;
    }
    if (!config.restore.empty() && !restore(**vm, config.restore)) return kExitConfigError;
    if (auto r = kite::attach_control(**vm, config); !r) {
        std::fprintf(stderr, "kite: %s\n", r.error().message.c_str());
        return kExitConfigError;
    }
    // Last before the guest runs: everything above may open files and create the VM unsandboxed.
    if (auto r = kite::install_sandbox(config); !r) {
        std::fprintf(stderr, "kite: %s (run with --seccomp off to go without the sandbox)\n",
                     r.error().message.c_str());
        return kExitConfigError;
    }
    return (*vm)->run();
}
