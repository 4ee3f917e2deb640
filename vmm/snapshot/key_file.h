// The key file of a sealed snapshot (memory sealed by the mirror VM): FILE.key beside FILE.snap holds
// the key that opens it, so the two can be kept apart.
#pragma once

#include <string>

#include "base/error.h"
#include "vmm/mirror/page_seal.h"

namespace kite {

// FILE.key: the 48 key bytes (cipher key, MAC key), written through a temporary file, mode 0600.
std::string key_file_path(const std::string& snapshot_path);
Result<void> write_key_file(const std::string& path, const MirrorKey& key);
Result<MirrorKey> read_key_file(const std::string& path);

}  // namespace kite
