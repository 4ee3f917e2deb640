// VcpuExit: why KVM_RUN returned, as a std::variant of small structs (kvm-ioctls style). Io and Mmio
// carry spans into the vCPU's kvm_run page: valid until the next run() on the same vCPU.
#pragma once

#include <cstdint>
#include <span>
#include <variant>

namespace kite {

struct IoIn {
    uint16_t port;
    std::span<uint8_t> data;  // fill this; count > 1 (rep ins) is split by the caller into size chunks
    uint32_t count;
};
struct IoOut {
    uint16_t port;
    std::span<const uint8_t> data;
    uint32_t count;
};
struct MmioRead {
    uint64_t addr;
    std::span<uint8_t> data;
};
struct MmioWrite {
    uint64_t addr;
    std::span<const uint8_t> data;
};
struct Hlt {};
struct Shutdown {};               // triple fault or similar: the guest reset itself
struct SystemEvent {
    uint32_t type;                // KVM_SYSTEM_EVENT_*
};
struct IoapicEoi {                // the guest ended a level-triggered interrupt of a split-irqchip route
    uint8_t vector;
};
struct Interrupted {};            // KVM_RUN returned EINTR (immediate_exit or a signal): check for work
struct MsrWrite {
    uint32_t index;
    uint64_t value;
    uint8_t* error;               // set to 1 to inject #GP
};
struct MsrRead {
    uint32_t index;
    unsigned long long* value;  // __u64 in kvm_run
    uint8_t* error;
};
struct Hypercall {
    uint64_t nr;
    uint64_t args[6];
    unsigned long long* ret;  // __u64 in kvm_run
};
struct FailEntry {
    uint64_t reason;
};
struct InternalError {
    uint32_t suberror;
};
struct UnknownExit {
    uint32_t reason;
};

using VcpuExit = std::variant<IoIn, IoOut, MmioRead, MmioWrite, Hlt, Shutdown, SystemEvent, IoapicEoi, Interrupted, MsrWrite,
                              MsrRead, Hypercall, FailEntry, InternalError, UnknownExit>;

}  // namespace kite
