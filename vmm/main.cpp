// kite: the executable. Parses the command line (vmm/cli.h), builds the VM (vmm/builder.h) and runs it.
// Exit status: the guest's choice (poweroff/reboot 0, debug-exit port value), 2 for any configuration or
// set-up error (nothing was started), 1 for a VMM failure while running, 128+N when stopped by signal N.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>

#include "vmm/builder.h"
#include "vmm/cli.h"
#include "vmm/control_client.h"

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
    auto vm = kite::VmBuilder(command->config).build();
    if (!vm) {
        std::fprintf(stderr, "kite: %s\n", vm.error().message.c_str());
        return kExitConfigError;
    }
    return (*vm)->run();
}
