// Reading a VmConfig from YAML. The keys and their format are the table of vmm/config/keys.h, rendered by
// config_reference() (kite run --help).
#pragma once

#include <string>
#include <string_view>

#include "base/error.h"
#include "vmm/config/config.h"
#include "vmm/config/keys.h"  // config_reference(), for callers of this header

namespace kite {

struct ParseOptions {
    bool check_files = true;     // kernel, initrd, restore and disk images must exist and be readable
    bool require_kernel = true;  // off when the command line may still supply --kernel
};

// Reads and parses a config file; relative paths inside are relative to the file's folder.
// Errors read "<file>:<line>:<column>: <key>: <message>".
Result<VmConfig> load_config_file(const std::string& path, const ParseOptions& options = {});

// Parses YAML text; file_name only appears in messages, base_dir is where relative paths start ("" = the
// current directory).
Result<VmConfig> parse_config(std::string_view yaml_text, std::string_view file_name, const std::string& base_dir,
                              const ParseOptions& options = {});

}  // namespace kite
