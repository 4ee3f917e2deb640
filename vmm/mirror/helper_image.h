// The mirror helper program (vmm/mirror/helper/helper.c) as a flat binary, embedded at build time by
// vmm/mirror/helper.cmake. Load it at KITE_MIRROR_CODE_GPA; its first byte is the entry point.
#pragma once

#include <cstddef>
#include <span>

namespace kite {

std::span<const std::byte> mirror_helper_image();

}  // namespace kite
