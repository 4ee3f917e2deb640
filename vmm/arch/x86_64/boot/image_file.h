// Reading kernel and initrd files with errors that name the file and what it was meant to be.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"

namespace kite::boot {

// An opened regular, non-empty file.
struct ImageFile {
    UniqueFd fd;
    uint64_t size;
    std::string label;  // e.g. "initrd /path/to/file", the prefix of every error about it
};

// Fails with "<what> <path>: <reason>" if the file is missing, unreadable, not a regular file or empty.
Result<ImageFile> open_image_file(const std::filesystem::path& path, const std::string& what);

// Reads the whole file into `out` (out.size() must equal file.size).
Result<void> read_image_file(const ImageFile& file, std::span<std::byte> out);

// open_image_file + read_image_file into a new buffer.
Result<std::vector<std::byte>> read_whole_image(const std::filesystem::path& path, const std::string& what);

}  // namespace kite::boot
