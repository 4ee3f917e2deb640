#include "vmm/config/exit_status.h"

#include <fmt/format.h>

#include <array>

namespace kite {

namespace {

constexpr std::array kRows{
    ExitStatusRow{"0", "the guest powered off; `kite shutdown`; `--help`, `--version`, `keys`, a valid `validate`"},
    ExitStatusRow{"N", "the guest wrote byte N to the debug-exit port (I/O port 0x501)"},
    ExitStatusRow{"1", "a VMM failure at run time, or a guest crash without pvpanic (a triple fault: kite prints "
                       "where the vCPU was)"},
    ExitStatusRow{"2", "bad input before anything started: unknown key, wrong type, bad size, a missing or malformed "
                       "kernel, a snapshot file that fails a check; the message names the file, line and key"},
    ExitStatusRow{"3", "the guest kernel panicked (pvpanic), whether it would then reboot (`panic=-1`) or wait "
                       "(`panic=0`); also when a kdump kernel it started after the panic ends the VM"},
    ExitStatusRow{"4", "the guest rebooted (`reboot`, the ACPI reset register, the i8042 reset line)"},
    ExitStatusRow{"128+N", "stopped by signal N (SIGINT, SIGTERM)"},
};

}  // namespace

std::span<const ExitStatusRow> exit_status_table() { return kRows; }

std::string exit_status_help() {
    std::string out = "Exit status:\n";
    for (const ExitStatusRow& row : kRows) out += fmt::format("  {:<6} {}\n", row.status, row.when);
    return out;
}

std::string exit_status_markdown() {
    std::string out = "| status | when |\n| --- | --- |\n";
    for (const ExitStatusRow& row : kRows) out += fmt::format("| {} | {} |\n", row.status, row.when);
    return out;
}

}  // namespace kite
