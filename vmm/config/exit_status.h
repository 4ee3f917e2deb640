// Kite's exit statuses: one table, rendered for `kite run --help` and into README.md between the
// `<!-- exit-status:begin -->` and `<!-- exit-status:end -->` lines (a unit test keeps them equal).
// A CI pipeline reads the status alone, so each way a VM ends has its own.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace kite {

inline constexpr int kExitOk = 0;             // poweroff, `kite shutdown`, a successful command
inline constexpr int kExitFailure = 1;        // a VMM failure at run time, or a guest triple fault
inline constexpr int kExitBadInput = 2;       // refused before anything started
inline constexpr int kExitGuestPanicked = 3;  // the guest kernel panicked (pvpanic)
inline constexpr int kExitGuestRebooted = 4;  // the guest rebooted

struct ExitStatusRow {
    std::string_view status;  // "0", "N", "128+N"
    std::string_view when;
};

std::span<const ExitStatusRow> exit_status_table();
// "Exit status:" and one line per row, for --help.
std::string exit_status_help();
// The README's Markdown table (header included, trailing newline).
std::string exit_status_markdown();

}  // namespace kite
