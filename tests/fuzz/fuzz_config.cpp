// Fuzz target: arbitrary bytes as a config file. parse_config must return a config or an error; never
// crash, hang, leak or throw. Files are not checked (check_files=false) so the input alone decides.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "vmm/config/yaml.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto config = kite::parse_config(text, "fuzz.yaml", "/base", kite::ParseOptions{.check_files = false});
    // Every successful parse satisfies the documented invariants; a violation is a parser bug.
    if (config && (config->vcpus == 0 || config->vcpus > 254 || config->memory.size == 0)) __builtin_trap();
    return 0;
}
