// kite: the executable. Parses the command line (vmm/cli.h), builds the VM (vmm/builder.h) and runs it.
// With --restore FILE the VM is built the same way but, instead of a kernel, gets FILE's memory and
// state (vmm/vm_snapshot.h). With --api-socket PATH it serves the control API (vmm/vm_control.h).
// Exit status: the guest's choice (poweroff/reboot 0, debug-exit port value), 2 for any configuration or
// set-up error (nothing was started), 1 for a VMM failure while running, 128+N when stopped by signal N.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <optional>

#include "vmm/builder.h"
#include "vmm/cli.h"
#include "vmm/control_client.h"
#include "vmm/snapshot/snapshot.h"
#include "vmm/vm_control.h"
#include "vmm/vm_snapshot.h"

namespace {

constexpr int kExitConfigError = 2;

void setup_logging(const std::string& level) {
    auto logger = spdlog::stderr_color_mt("kite");
    logger->set_pattern("kite: %^%l%$: %v");
    spdlog::set_default_logger(logger);
    spdlog::set_level(spdlog::level::from_str(level));
}

}  // namespace

int main(int argc, char** argv) {
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
    // A snapshot to resume is read and validated whole before anything is built: a truncated or corrupt
    // file is a configuration error and nothing runs.
    std::optional<kite::SnapshotData> snapshot;
    std::optional<kite::MirrorKey> key;
    double read_ms = 0;
    if (!config.restore.empty()) {
        if (std::string why = kite::snapshot_refusal(config); !why.empty()) {
            std::fprintf(stderr, "kite: cannot restore: %s\n", why.c_str());
            return kExitConfigError;
        }
        auto read_start = std::chrono::steady_clock::now();
        auto data = kite::read_snapshot(config.restore);
        read_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - read_start).count();
        if (!data) {
            std::fprintf(stderr, "kite: cannot restore: %s\n", data.error().message.c_str());
            return kExitConfigError;
        }
        snapshot = std::move(*data);
        if (snapshot->flags & kite::kSnapshotFlagSealedMemory) {
            auto k = kite::read_key_file(kite::key_file_path(config.restore));
            if (!k) {
                std::fprintf(stderr, "kite: cannot restore a mirror snapshot without its key: %s\n",
                             k.error().message.c_str());
                return kExitConfigError;
            }
            key = *k;
        }
    }
    auto vm = kite::VmBuilder(config).build();
    if (!vm) {
        std::fprintf(stderr, "kite: %s\n", vm.error().message.c_str());
        return kExitConfigError;
    }
    if (snapshot) {
        auto start = std::chrono::steady_clock::now();
        if (auto r = kite::apply_snapshot(**vm, *snapshot, key); !r) {
            std::fprintf(stderr, "kite: cannot restore %s: %s\n", config.restore.c_str(), r.error().message.c_str());
            return kExitConfigError;
        }
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
        spdlog::info("restored {} ({} MiB{}): file read and checked in {:.1f} ms, state applied in {:.1f} ms",
                     config.restore, (*vm)->ram().ram_size() >> 20, key ? ", through the mirror VM" : "", read_ms, ms);
        snapshot.reset();  // the file's bytes are no longer needed while the guest runs
    }
    if (auto r = kite::attach_control(**vm, config); !r) {
        std::fprintf(stderr, "kite: %s\n", r.error().message.c_str());
        return kExitConfigError;
    }
    return (*vm)->run();
}
