// The command line: `kite run|validate|pause|resume|snapshot|shutdown|status|keys`, --help and --version.
// Flags use the same setters as the YAML file (vmm/config/fields.h), so a value means the same everywhere.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "vmm/config/config.h"

namespace kite {

struct CliCommand {
    enum class Kind { Run, Validate, Help, Version, Control } kind = Kind::Help;  // Help: also `kite keys`
    // Run: the finished config (file, then flags), files checked. Validate: the file's config.
    // Control: only control_socket is set (from --api-socket).
    VmConfig config;
    std::string config_path;  // Run (may be empty: flags only) and Validate
    std::string output;       // Help, Version and Validate ("FILE: ok"): text for stdout
    // Control: {"pause"}, {"resume"}, {"shutdown"}, {"status"} or {"snapshot", ABSOLUTE_PATH, ["via=MODE"],
    // ["then=STATE"]} (the VMM checks MODE and STATE). The snapshot
    // path is made absolute because the VMM that writes it may run in another directory.
    std::vector<std::string> control_args;
};

// Parses argv. Errors (unknown flag, bad value, missing subcommand, a config file's error) are messages
// for stderr; main exits with status 2 on them.
Result<CliCommand> parse_cli(int argc, char** argv);

}  // namespace kite
