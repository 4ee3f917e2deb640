// Where a character device's guest output goes: stdout, a file (created/truncated at start), or nowhere.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "base/error.h"
#include "base/fd.h"
#include "vmm/config/config.h"

namespace kite {

class OutputSink {
public:
    static Result<std::shared_ptr<OutputSink>> open(const OutputConfig& config, std::string_view what);
    // Writes everything (retrying short writes); errors are dropped: guest output must never stop the VM.
    void write(std::span<const uint8_t> bytes);

private:
    OutputSink(UniqueFd owned, int fd) : owned_(std::move(owned)), fd_(fd) {}
    UniqueFd owned_;
    int fd_ = -1;  // -1: output is off
};

}  // namespace kite
