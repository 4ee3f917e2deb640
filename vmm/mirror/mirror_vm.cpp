#include "vmm/mirror/mirror_vm.h"

#include <sys/random.h>
#include <sys/stat.h>

#include <spdlog/spdlog.h>

#include <cstring>
#include <cstdio>
#include <string>

#include "vmm/mirror/helper_image.h"
#include "vmm/mirror/mirror_layout.h"
#include "vmm/mirror/watchdog.h"

namespace kite {

namespace {

constexpr int kCapVmCopyEncContextFrom = 197;
constexpr uint64_t kVmTypeSev = 1ull << 2;

bool host_has_sev(const Kvm& kvm) {
    auto types = kvm.check_extension(kKvmCapVmTypes);
    if (types && (static_cast<uint64_t>(*types) & kVmTypeSev)) return true;
    struct stat st;
    return ::stat("/dev/sev", &st) == 0;
}

const kvm_cpuid_entry2* find_leaf(const std::vector<kvm_cpuid_entry2>& cpuid, uint32_t function) {
    for (const auto& e : cpuid)
        if (e.function == function && e.index == 0) return &e;
    return nullptr;
}

std::string hex(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

Result<uint64_t> random_u64() {
    uint64_t v = 0;
    if (::getrandom(&v, sizeof v, 0) != sizeof v) return std::unexpected(errno_error("getrandom (mirror nonce)"));
    return v;
}

kvm_segment flat_segment(uint16_t selector, uint8_t type, bool code) {
    kvm_segment s{};
    s.base = 0;
    s.limit = 0xffffffff;
    s.selector = selector;
    s.type = type;
    s.present = 1;
    s.s = 1;
    s.g = 1;
    s.l = code ? 1 : 0;
    s.db = code ? 0 : 1;
    return s;
}

}  // namespace

const char* to_string(MirrorStatus status) {
    switch (status) {
    case MirrorStatus::Ok: return "ok";
    case MirrorStatus::BadCommand: return "unknown command";
    case MirrorStatus::OutOfRange: return "RAM offset or address out of range";
    case MirrorStatus::BadCount: return "bad batch count";
    case MirrorStatus::BadMac: return "MAC mismatch";
    case MirrorStatus::BadRecord: return "malformed record";
    }
    return "unknown status";
}

Result<std::unique_ptr<MirrorVm>> MirrorVm::create(const Kvm& kvm, const VmFd& owner, GuestRam& ram,
                                                   MirrorOptions options) {
    if (ram.ram_size() > KITE_MIRROR_RAM_VA) return fail("mirror VM: RAM larger than the helper's 64 TiB view");
    auto vm = kvm.create_vm();
    if (!vm) return std::unexpected(vm.error());
    bool sev = false;
    if (host_has_sev(kvm) && options.owner_is_sev) {
        // Must precede the mirror's vCPU: the mirror then runs with the owner's memory encryption key.
        if (auto ok = vm->enable_cap(kCapVmCopyEncContextFrom, static_cast<uint64_t>(owner.fd())); !ok)
            return std::unexpected(with_context("mirror VM: KVM_CAP_VM_COPY_ENC_CONTEXT_FROM", ok.error()));
        sev = true;
    } else {
        spdlog::info("mirror VM: {}; pages are sealed by the helper (ChaCha20 + SipHash) instead",
                     host_has_sev(kvm) ? "the main VM is not an SEV guest" : "SEV is absent on this host");
    }
    auto priv = RamBlock::create(KITE_MIRROR_PRIVATE_SIZE, RamOffset(0), HugePages::None, "kite-mirror-private");
    if (!priv) return std::unexpected(priv.error());
    std::unique_ptr<MirrorVm> m(new MirrorVm(std::move(*vm), std::move(*priv), ram));
    m->sev_ = sev;
    m->watchdog_ = options.watchdog;

    auto cpuid = kvm.supported_cpuid();
    if (!cpuid) return std::unexpected(cpuid.error());
    const auto* leaf_addr = find_leaf(*cpuid, 0x80000008);
    const auto* leaf_ext = find_leaf(*cpuid, 0x80000001);
    m->gib_pages_ = leaf_ext && (leaf_ext->edx & (1u << 26));
    auto high_base = mirror_high_base(host_phys_address_bits(leaf_addr ? leaf_addr->eax : 0, sev), ram.ram_size());
    if (!high_base) return std::unexpected(high_base.error());
    m->high_base_ = *high_base;

    // Private memory: code, GDT, secret, mailbox.
    std::span<const std::byte> payload = options.payload.empty() ? mirror_helper_image() : options.payload;
    if (payload.size() > KITE_MIRROR_CODE_SIZE) return fail("mirror VM: helper image larger than its 64 KiB slot");
    std::byte* base = m->private_.host();
    auto at = [&](uint64_t gpa) { return base + (gpa - KITE_MIRROR_PRIVATE_BASE); };
    std::memcpy(at(KITE_MIRROR_CODE_GPA), payload.data(), payload.size());
    const uint64_t gdt[3] = {0, 0x00af9b000000ffffull, 0x00cf93000000ffffull};
    std::memcpy(at(KITE_MIRROR_GDT_GPA), gdt, sizeof gdt);
    MirrorKey key;
    if (options.key) {
        key = *options.key;
    } else {
        auto k = MirrorKey::random();
        if (!k) return std::unexpected(k.error());
        key = *k;
    }
    kite_mirror_secret secret{};
    std::memcpy(secret.cipher_key, key.cipher.data(), sizeof secret.cipher_key);
    std::memcpy(secret.mac_key, key.mac.data(), sizeof secret.mac_key);
    if (options.nonce_base) {
        secret.nonce_base = *options.nonce_base;
    } else {
        auto n = random_u64();
        if (!n) return std::unexpected(n.error());
        secret.nonce_base = *n;
    }
    std::memcpy(at(KITE_MIRROR_SECRET_GPA), &secret, sizeof secret);
    auto& mb = m->mailbox();
    mb.ram_size = ram.ram_size();
    mb.high_base = m->high_base_;
    mb.records_gpa = KITE_MIRROR_RECORDS_GPA;

    if (auto ok = m->map_ram(options.identity_map_low_4g); !ok) return std::unexpected(ok.error());
    if (auto ok = m->install_windows(options.windows); !ok) return std::unexpected(ok.error());
    if (auto ok = m->setup_vcpu(*cpuid); !ok) return std::unexpected(ok.error());
    return m;
}

kite_mirror_mailbox& MirrorVm::mailbox() {
    return *reinterpret_cast<kite_mirror_mailbox*>(private_.host() + (KITE_MIRROR_MAILBOX_GPA - KITE_MIRROR_PRIVATE_BASE));
}

std::span<SealedRecord> MirrorVm::records() {
    auto* r = reinterpret_cast<SealedRecord*>(private_.host() + (KITE_MIRROR_RECORDS_GPA - KITE_MIRROR_PRIVATE_BASE));
    return {r, KITE_MIRROR_MAX_BATCH};
}

Result<void> MirrorVm::map_ram(bool identity_low_4g) {
    if (auto ok = vm_.set_user_memory_region(next_slot_++, KITE_MIRROR_PRIVATE_BASE, KITE_MIRROR_PRIVATE_SIZE,
                                             private_.host());
        !ok)
        return ok;
    for (size_t i = 0; i < ram_.block_count(); ++i) {
        const RamBlock& b = ram_.block(i);
        if (auto ok = vm_.set_user_memory_region(next_slot_++, high_base_ + b.ram_offset().value(), b.size(), b.host());
            !ok)
            return ok;
    }
    if (!identity_low_4g) return {};
    for (const auto& r : ram_.regions()) {
        if (r.gpa.value() >= kFourGiB) continue;
        uint64_t len = std::min(r.size, kFourGiB - r.gpa.value());
        if (ranges_overlap(r.gpa.value(), len, KITE_MIRROR_PRIVATE_BASE, KITE_MIRROR_PRIVATE_SIZE))
            return fail("mirror VM: main RAM at GPA " + hex(r.gpa.value()) +
                        " overlaps the helper's private window below 4 GiB");
        if (identity_windows_.size() >= KITE_MIRROR_MAX_WINDOWS - kMaxGuestWindows)
            return fail("mirror VM: too many RAM regions below 4 GiB for the identity alias");
        if (auto ok = vm_.set_user_memory_region(next_slot_++, r.gpa.value(), len, r.host); !ok) return ok;
        identity_windows_.push_back({r.gpa.value(), len});
    }
    return {};
}

Result<void> MirrorVm::install_windows(std::span<const MirrorWindow> windows) {
    if (auto ok = validate_windows(ram_, windows); !ok) return ok;
    for (const auto& w : windows)
        if (w.mirror_gpa.value() + w.length > high_base_)
            return fail("mirror VM: option-2 window at mirror GPA " + hex(w.mirror_gpa.value()) +
                        " reaches the RAM view at the high base");
    for (uint32_t slot : guest_window_slots_)
        if (auto ok = vm_.set_user_memory_region(slot, 0, 0, nullptr); !ok) return ok;
    guest_window_slots_.clear();
    guest_windows_.clear();
    for (const auto& w : windows) {
        auto host = ram_.span(w.main_gpa, w.length);  // validated above: inside one region
        uint32_t slot = next_slot_++;
        if (auto ok = vm_.set_user_memory_region(slot, w.mirror_gpa.value(), w.length, host->data()); !ok) return ok;
        guest_window_slots_.push_back(slot);
        guest_windows_.push_back(w);
    }
    if (auto ok = write_window_table(); !ok) return ok;
    if (auto ok = rebuild_page_tables(); !ok) return ok;
    if (!vcpu_) return {};
    // Reloading CR3 through KVM_SET_SREGS flushes the helper's TLB, so new windows are seen.
    kvm_sregs sregs{};
    if (auto ok = vcpu_->get_sregs(sregs); !ok) return ok;
    sregs.cr3 = cr3_;
    return vcpu_->set_sregs(sregs);
}

Result<void> MirrorVm::write_window_table() {
    auto& mb = mailbox();
    uint32_t n = 0;
    for (const auto& w : identity_windows_) mb.windows[n++] = w;
    for (const auto& w : guest_windows_) mb.windows[n++] = {w.mirror_gpa.value(), w.length};
    mb.window_count = n;
    return {};
}

Result<void> MirrorVm::rebuild_page_tables() {
    std::vector<PageRange> ranges{{0, 0, kFourGiB}, {KITE_MIRROR_RAM_VA, high_base_, ram_.ram_size()}};
    for (const auto& w : guest_windows_) ranges.push_back({w.mirror_gpa.value(), w.mirror_gpa.value(), w.length});
    std::span<std::byte> area(private_.host() + (KITE_MIRROR_PAGE_TABLES_GPA - KITE_MIRROR_PRIVATE_BASE),
                              KITE_MIRROR_PAGE_TABLES_SIZE);
    auto cr3 = build_page_tables(area, KITE_MIRROR_PAGE_TABLES_GPA, ranges, gib_pages_);
    if (!cr3) return std::unexpected(cr3.error());
    cr3_ = *cr3;
    return {};
}

Result<void> MirrorVm::setup_vcpu(const std::vector<kvm_cpuid_entry2>& cpuid) {
    auto vcpu = vm_.create_vcpu(0);
    if (!vcpu) return std::unexpected(vcpu.error());
    // KVM checks EFER.LME and 1 GiB page-table entries against the vCPU's CPUID.
    if (auto ok = vcpu->set_cpuid(cpuid); !ok) return ok;
    kvm_sregs sregs{};
    if (auto ok = vcpu->get_sregs(sregs); !ok) return ok;
    sregs.cs = flat_segment(KITE_MIRROR_GDT_CODE64, 0xb, true);
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = flat_segment(KITE_MIRROR_GDT_DATA, 0x3, false);
    sregs.tr = kvm_segment{};
    sregs.tr.limit = 0x67;
    sregs.tr.type = 0xb;  // busy 64-bit TSS: VMX requires a usable TR even if nothing uses it
    sregs.tr.present = 1;
    sregs.gdt.base = KITE_MIRROR_GDT_GPA;
    sregs.gdt.limit = 3 * 8 - 1;
    sregs.idt = {};
    sregs.cr0 = 0x80050033;  // PG, WP, NE, ET, MP, PE
    sregs.cr3 = cr3_;
    sregs.cr4 = 0x20;        // PAE
    sregs.efer = 0x500;      // LME, LMA
    if (auto ok = vcpu->set_sregs(sregs); !ok) return ok;
    kvm_regs regs{};
    regs.rip = KITE_MIRROR_CODE_GPA;
    regs.rsp = KITE_MIRROR_STACK_TOP;
    regs.rflags = 0x2;  // interrupts off: the helper takes none
    if (auto ok = vcpu->set_regs(regs); !ok) return ok;
    vcpu_ = std::move(*vcpu);
    return {};
}

std::string MirrorVm::describe_exit(const VcpuExit& exit) const {
    const kvm_run* run = vcpu_->run_struct();
    std::string what = "KVM exit reason " + std::to_string(run->exit_reason);
    if (const auto* e = std::get_if<InternalError>(&exit)) {
        what += ", internal error suberror " + std::to_string(e->suberror);
        for (uint32_t i = 0; i < std::min<uint32_t>(run->internal.ndata, 4); ++i)
            what += " data[" + std::to_string(i) + "]=" + hex(run->internal.data[i]);
    } else if (const auto* m = std::get_if<MmioRead>(&exit)) {
        what += ", read of unmapped GPA " + hex(m->addr);
    } else if (const auto* w = std::get_if<MmioWrite>(&exit)) {
        what += ", write to unmapped GPA " + hex(w->addr);
    }
    kvm_regs regs{};
    if (vcpu_->get_regs(regs)) what += ", helper RIP " + hex(regs.rip);
    return what;
}

Result<void> MirrorVm::run_until_halt() {
    auto dog = Watchdog::arm(watchdog_);
    if (!dog) return std::unexpected(dog.error());
    for (;;) {
        auto exit = vcpu_->run();
        if (!exit) return std::unexpected(exit.error());
        if (std::holds_alternative<Hlt>(*exit)) return {};
        if (std::holds_alternative<Interrupted>(*exit)) {
            if (dog->expired())
                return fail("mirror helper did not finish within " + std::to_string(watchdog_.count()) + " ms");
            continue;
        }
        return fail("mirror helper: unexpected vCPU exit: " + describe_exit(*exit));
    }
}

Result<MirrorReply> MirrorVm::command(const MirrorRequest& request) {
    if (broken_) return fail("mirror VM: a previous command failed; recreate the mirror");
    if (request.offsets.size() > KITE_MIRROR_MAX_BATCH) return fail("mirror VM: batch larger than 128 pages");
    auto& mb = mailbox();
    mb.command = static_cast<uint32_t>(request.command);
    mb.count = request.count;
    mb.status = -1;
    // Import commands carry no offsets: memcpy from an empty span's null pointer is undefined.
    if (!request.offsets.empty()) std::memcpy(mb.offsets, request.offsets.data(), request.offsets.size_bytes());
    uint64_t go = mb.done_seq + 1;
    mb.go_seq = go;
    auto ran = run_until_halt();
    if (ran && mb.done_seq != go) ran = fail("mirror helper halted without completing the command");
    if (!ran) {
        broken_ = true;
        return std::unexpected(ran.error());
    }
    return MirrorReply{static_cast<MirrorStatus>(mb.status), mb.count};
}

Result<std::vector<SealedRecord>> MirrorVm::export_pages(std::span<const uint64_t> offsets) {
    std::vector<SealedRecord> out;
    out.reserve(offsets.size());
    for (size_t first = 0; first < offsets.size(); first += KITE_MIRROR_MAX_BATCH) {
        auto chunk = offsets.subspan(first, std::min<size_t>(KITE_MIRROR_MAX_BATCH, offsets.size() - first));
        auto reply = command({MirrorCommand::ExportBatch, static_cast<uint32_t>(chunk.size()), chunk});
        if (!reply) return std::unexpected(reply.error());
        if (reply->status != MirrorStatus::Ok)
            return fail("mirror helper refused to export RAM offset " +
                        hex(chunk[std::min<size_t>(reply->count, chunk.size() - 1)]) + ": " +
                        to_string(reply->status));
        auto recs = records();
        out.insert(out.end(), recs.begin(), recs.begin() + static_cast<ptrdiff_t>(chunk.size()));
    }
    return out;
}

Result<void> MirrorVm::import_pages(std::span<const SealedRecord> in) {
    for (size_t first = 0; first < in.size(); first += KITE_MIRROR_MAX_BATCH) {
        auto chunk = in.subspan(first, std::min<size_t>(KITE_MIRROR_MAX_BATCH, in.size() - first));
        std::memcpy(records().data(), chunk.data(), chunk.size_bytes());
        auto reply = command({MirrorCommand::ImportBatch, static_cast<uint32_t>(chunk.size()), {}});
        if (!reply) return std::unexpected(reply.error());
        if (reply->status != MirrorStatus::Ok) {
            size_t bad = first + std::min<size_t>(reply->count, chunk.size() - 1);
            return fail("mirror helper refused record " + std::to_string(bad) + " (RAM offset " +
                        hex(in[bad].ram_offset) + "): " + to_string(reply->status));
        }
    }
    return {};
}

Result<SealedRecord> MirrorVm::export_gpa(GuestAddress gpa) {
    uint64_t addr = gpa.value();
    auto reply = command({MirrorCommand::ExportGpa, 1, std::span(&addr, 1)});
    if (!reply) return std::unexpected(reply.error());
    if (reply->status != MirrorStatus::Ok)
        return fail("mirror helper refused to export GPA " + hex(addr) + ": " +
                    to_string(reply->status));
    return records()[0];
}

}  // namespace kite
