// MirrorVm: the helper ("mirror") VM that exports and imports guest pages for snapshots and migration,
// created on demand from the main VM's Kvm, VM fd and GuestRam (see docs/MIRROR_VM.md and
// helper_abi.h for the address space).
//
// A second KVM VM with one vCPU, no irqchip, no dirty logging; its private memory (own memfd) holds the
// helper program, mailbox, key and record buffer; every RAM block is mapped at high_base + ram_offset
// (mapped into the main VM or not); option 1 adds the main VM's RAM below 4 GiB at the same GPAs, option 2
// the guest-requested windows. Under SEV (owner_is_sev on an SEV host) the mirror copies the owner's
// encryption context before its vCPU exists; without SEV the helper's ChaCha20+SipHash sealing stands in.
//
// Threading: all calls from one thread at a time (the VMM thread, with the main VM's vCPUs paused while
// pages are exported or imported). command() blocks for at most the watchdog time plus one page.
// Lifetime: must not outlive the Kvm, the owner VmFd or the GuestRam it was created from.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "memory/guest_ram.h"
#include "memory/ram_block.h"
#include "vmm/kvm/kvm.h"
#include "vmm/mirror/helper_abi.h"
#include "vmm/mirror/migration_control.h"
#include "vmm/mirror/page_seal.h"

namespace kite {

enum class MirrorCommand : uint32_t {
    Reset = KITE_MIRROR_CMD_RESET,
    Export = KITE_MIRROR_CMD_EXPORT,
    Import = KITE_MIRROR_CMD_IMPORT,
    ExportBatch = KITE_MIRROR_CMD_EXPORT_BATCH,
    ImportBatch = KITE_MIRROR_CMD_IMPORT_BATCH,
    ExportGpa = KITE_MIRROR_CMD_EXPORT_GPA,
};

enum class MirrorStatus : int32_t {
    Ok = KITE_MIRROR_OK,
    BadCommand = KITE_MIRROR_ERR_COMMAND,
    OutOfRange = KITE_MIRROR_ERR_RANGE,
    BadCount = KITE_MIRROR_ERR_COUNT,
    BadMac = KITE_MIRROR_ERR_MAC,
    BadRecord = KITE_MIRROR_ERR_RECORD,
};
const char* to_string(MirrorStatus status);

struct MirrorOptions {
    bool identity_map_low_4g = false;    // option 1
    std::vector<MirrorWindow> windows;   // option 2 (MigrationControl::windows()); may also come later
    std::optional<MirrorKey> key;        // transport key; default: a fresh getrandom key
    std::optional<uint64_t> nonce_base;  // first record nonce; default: random
    std::chrono::milliseconds watchdog{5000};
    std::span<const std::byte> payload;  // helper image; empty: the embedded helper (tests pass others)
    bool owner_is_sev = false;           // the owner VM was launched as an SEV guest
};

// One mailbox command. For Export/ExportBatch/ExportGpa `offsets` are the RAM offsets (or the GPA);
// for Import/ImportBatch the records must already be in records() and `count` says how many.
struct MirrorRequest {
    MirrorCommand command;
    uint32_t count = 0;
    std::span<const uint64_t> offsets;
};

struct MirrorReply {
    MirrorStatus status;
    uint32_t count;  // records produced or pages imported before the status
};

class MirrorVm {
public:
    static Result<std::unique_ptr<MirrorVm>> create(const Kvm& kvm, const VmFd& owner, GuestRam& ram,
                                                    MirrorOptions options);
    MirrorVm(const MirrorVm&) = delete;
    MirrorVm& operator=(const MirrorVm&) = delete;

    // Runs one command: fills the mailbox, KVM_RUN until KVM_EXIT_HLT. Errors: watchdog expiry, any other
    // exit, a halt without completion; after one the mirror refuses further commands (recreate it).
    // A helper refusal is not an error here: it is in MirrorReply::status.
    Result<MirrorReply> command(const MirrorRequest& request);
    // The helper's record buffer (KITE_MIRROR_MAX_BATCH records), shared with the helper.
    std::span<SealedRecord> records();

    // Seals the pages at `offsets` (any number, batched). Fails on the first refusal.
    Result<std::vector<SealedRecord>> export_pages(std::span<const uint64_t> offsets);
    // Opens records into RAM (at their own RAM offsets). Fails on the first refusal, naming the record;
    // records before it have been imported, the refused record's page is unchanged.
    Result<void> import_pages(std::span<const SealedRecord> records);
    // Seals the page at mirror GPA `gpa`, which must lie in an option-1 or option-2 window.
    Result<SealedRecord> export_gpa(GuestAddress gpa);

    // Replaces the option-2 windows (after a guest's MSR write, while main vCPUs are paused).
    Result<void> install_windows(std::span<const MirrorWindow> windows);

    uint64_t high_base() const { return high_base_; }
    bool sev() const { return sev_; }
    bool gib_pages() const { return gib_pages_; }

private:
    MirrorVm(VmFd vm, RamBlock priv, GuestRam& ram) : vm_(std::move(vm)), private_(std::move(priv)), ram_(ram) {}
    Result<void> map_ram(bool identity_low_4g);
    Result<void> setup_vcpu(const std::vector<kvm_cpuid_entry2>& cpuid);
    Result<void> rebuild_page_tables();
    Result<void> write_window_table();
    kite_mirror_mailbox& mailbox();
    Result<void> run_until_halt();
    std::string describe_exit(const VcpuExit& exit) const;

    VmFd vm_;
    RamBlock private_;
    GuestRam& ram_;
    std::optional<VcpuFd> vcpu_;
    uint64_t high_base_ = 0;
    uint64_t cr3_ = 0;
    bool sev_ = false;
    bool gib_pages_ = false;
    bool broken_ = false;
    std::chrono::milliseconds watchdog_{};
    uint32_t next_slot_ = 0;
    std::vector<kite_mirror_window> identity_windows_;  // option 1 regions, helper-readable by GPA
    std::vector<MirrorWindow> guest_windows_;           // option 2
    std::vector<uint32_t> guest_window_slots_;
};

}  // namespace kite
