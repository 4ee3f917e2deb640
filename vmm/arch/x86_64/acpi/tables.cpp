#include "vmm/arch/x86_64/acpi/tables.h"

#include <optional>
#include <string>
#include <string_view>

#include "base/size.h"
#include "devices/legacy/acpi_pm.h"
#include "devices/legacy/pvpanic.h"
#include "devices/legacy/serial.h"
#include "vmm/arch/x86_64/acpi/aml.h"

namespace kite {
namespace {

using aml::Bytes;

constexpr std::string_view kOemId = "KITE  ";  // 6 bytes
constexpr uint32_t kOemRevision = 1;
constexpr std::string_view kCreatorId = "KITE";
constexpr uint32_t kCreatorRevision = 1;
constexpr size_t kHeaderSize = 36;
constexpr size_t kRsdpSize = 36;
constexpr uint64_t kTableAlignment = 16;

constexpr uint64_t kLocalApicAddress = 0xfee0'0000;
constexpr uint64_t kIoApicAddress = 0xfec0'0000;
constexpr uint32_t kIoApicPins = 24;  // Kite's I/O APIC (devices/legacy/ioapic.h): GSIs 0-23
constexpr unsigned kMaxCpus = 255;        // xAPIC IDs 0..254 (0xff is the broadcast ID)
constexpr size_t kMaxVirtioDevices = 0x1000;  // names V000..VFFF

// PCI host bridge: bus 0 only, configuration mechanism #1 at ports 0xcf8-0xcff; the I/O ports it
// passes down are the rest of the 64 KiB, 0x0000-0x0cf7 and 0x0d00-0xffff.
constexpr uint16_t kPciConfigPort = 0xcf8;
constexpr uint8_t kPciConfigPortCount = 8;
constexpr uint16_t kPciIoLowLast = 0x0cf7;
constexpr uint16_t kPciIoHighFirst = 0x0d00;
constexpr uint64_t k4GiB = 0x1'0000'0000;

// FADT (ACPI 6.5, table 5.9) offsets and values.
constexpr size_t kFadtSize = 276;
constexpr uint8_t kFadtRevision = 6;
constexpr uint8_t kFadtMinorRevision = 5;
constexpr size_t kFadtIapcBootArch = 109;
constexpr size_t kFadtFlags = 112;
constexpr size_t kFadtResetReg = 116;
constexpr size_t kFadtResetValue = 128;
constexpr size_t kFadtMinorVersion = 131;
constexpr size_t kFadtXDsdt = 140;
constexpr size_t kFadtSleepControlReg = 244;
constexpr size_t kFadtSleepStatusReg = 256;
constexpr size_t kFadtHypervisorId = 268;
constexpr uint16_t kBootArchVgaNotPresent = 1 << 2;  // bit 3, MSI not supported, stays clear
constexpr uint16_t kBootArchCmosRtcNotPresent = 1 << 5;
constexpr uint32_t kFlagPowerButtonIsControlMethod = 1 << 4;
constexpr uint32_t kFlagSleepButtonIsControlMethod = 1 << 5;
constexpr uint32_t kFlagResetRegSupported = 1 << 10;
constexpr uint32_t kFlagHardwareReduced = 1 << 20;
constexpr uint8_t kGasSystemIo = 1;
constexpr uint8_t kGasAccessByte = 1;

constexpr uint8_t kMadtRevision = 5;
constexpr uint32_t kMadtFlags = 0;  // no PCAT_COMPAT: there is no dual 8259
constexpr uint8_t kMadtLocalApic = 0;
constexpr uint8_t kMadtIoApic = 1;

void put_le(Bytes& t, size_t offset, uint64_t value, int size) {
    for (int i = 0; i < size; ++i) t[offset + i] = static_cast<uint8_t>(value >> (8 * i));
}
void append_le(Bytes& t, uint64_t value, int size) {
    for (int i = 0; i < size; ++i) t.push_back(static_cast<uint8_t>(value >> (8 * i)));
}
void put_text(Bytes& t, size_t offset, std::string_view text) {
    for (size_t i = 0; i < text.size(); ++i) t[offset + i] = static_cast<uint8_t>(text[i]);
}
void append(Bytes& t, const Bytes& more) { t.insert(t.end(), more.begin(), more.end()); }

uint8_t checksum_of(const Bytes& t, size_t begin, size_t end) {
    uint8_t sum = 0;
    for (size_t i = begin; i < end; ++i) sum = static_cast<uint8_t>(sum + t[i]);
    return static_cast<uint8_t>(-sum);
}

// A table with its 36-byte header; finish() fills in length and checksum once the body is appended.
Bytes start_table(std::string_view signature, uint8_t revision) {
    Bytes t(kHeaderSize, 0);
    put_text(t, 0, signature);
    t[8] = revision;
    put_text(t, 10, kOemId);
    put_text(t, 16, "KITE");
    put_text(t, 20, signature);  // OEM table ID "KITE<signature>"
    put_le(t, 24, kOemRevision, 4);
    put_text(t, 28, kCreatorId);
    put_le(t, 32, kCreatorRevision, 4);
    return t;
}

void finish_table(Bytes& t) {
    put_le(t, 4, t.size(), 4);
    t[9] = 0;
    t[9] = checksum_of(t, 0, t.size());
}

// Generic Address Structure for a 1-byte register in I/O space.
void put_io_register(Bytes& t, size_t offset, uint16_t port) {
    t[offset + 0] = kGasSystemIo;
    t[offset + 1] = 8;  // bit width
    t[offset + 2] = 0;  // bit offset
    t[offset + 3] = kGasAccessByte;
    put_le(t, offset + 4, port, 8);
}

Bytes build_rsdp(uint64_t xsdt) {
    Bytes t(kRsdpSize, 0);
    put_text(t, 0, "RSD PTR ");
    put_text(t, 9, kOemId);
    t[15] = 2;                   // revision: ACPI 2.0+ (XSDT)
    put_le(t, 16, 0, 4);         // no RSDT
    put_le(t, 20, kRsdpSize, 4);
    put_le(t, 24, xsdt, 8);
    t[8] = checksum_of(t, 0, 20);
    t[32] = checksum_of(t, 0, kRsdpSize);
    return t;
}

Bytes build_xsdt(const std::vector<uint64_t>& tables) {
    Bytes t = start_table("XSDT", 1);
    for (uint64_t addr : tables) append_le(t, addr, 8);
    finish_table(t);
    return t;
}

Bytes build_fadt(uint64_t dsdt) {
    Bytes t = start_table("FACP", kFadtRevision);
    t.resize(kFadtSize, 0);
    // No FACS, no legacy PM blocks, no SCI: hardware-reduced. The 32-bit DSDT field stays 0 because
    // X_DSDT is set (the spec requires one of them to be 0).
    put_le(t, kFadtIapcBootArch, kBootArchVgaNotPresent | kBootArchCmosRtcNotPresent, 2);
    put_le(t, kFadtFlags,
           kFlagHardwareReduced | kFlagResetRegSupported | kFlagPowerButtonIsControlMethod |
               kFlagSleepButtonIsControlMethod,
           4);
    put_io_register(t, kFadtResetReg, kAcpiResetPort);
    t[kFadtResetValue] = kAcpiResetValue;
    t[kFadtMinorVersion] = kFadtMinorRevision;
    put_le(t, kFadtXDsdt, dsdt, 8);
    put_io_register(t, kFadtSleepControlReg, kAcpiSleepControlPort);
    put_io_register(t, kFadtSleepStatusReg, kAcpiSleepStatusPort);
    put_text(t, kFadtHypervisorId, "KITEVMM");
    finish_table(t);
    return t;
}

Bytes build_madt(const AcpiConfig& config) {
    Bytes t = start_table("APIC", kMadtRevision);
    append_le(t, kLocalApicAddress, 4);
    append_le(t, kMadtFlags, 4);
    for (unsigned cpu = 0; cpu < config.num_cpus; ++cpu) {
        t.push_back(kMadtLocalApic);
        t.push_back(8);
        t.push_back(static_cast<uint8_t>(cpu));  // ACPI processor UID
        t.push_back(static_cast<uint8_t>(cpu));  // APIC ID
        append_le(t, 1, 4);                      // enabled
    }
    t.push_back(kMadtIoApic);
    t.push_back(12);
    t.push_back(0);  // I/O APIC ID
    t.push_back(0);
    append_le(t, kIoApicAddress, 4);
    append_le(t, 0, 4);  // GSI base
    finish_table(t);
    return t;
}

// Collects the first error of a sequence of fallible encodings.
class Terms {
public:
    Terms& add(Result<Bytes> term) {
        if (!error_) {
            if (term) terms_.push_back(std::move(*term));
            else error_ = term.error();
        }
        return *this;
    }
    Result<std::vector<Bytes>> take() {
        if (error_) return std::unexpected(*error_);
        return std::move(terms_);
    }

private:
    std::vector<Bytes> terms_;
    std::optional<Error> error_;
};

Result<Bytes> sta_present() {
    return aml::method("_STA", 0, false, {aml::return_value(aml::integer(0x0f))});
}

// A device with an ID, a unique ID, present, and its resources: what COM1, pvpanic and the virtio-mmio
// transports each are.
Result<Bytes> plain_device(std::string_view name, Result<Bytes> hid, uint64_t uid, Result<Bytes> crs) {
    if (!hid) return std::unexpected(hid.error());
    if (!crs) return std::unexpected(crs.error());
    auto terms = Terms()
                     .add(aml::name("_HID", *hid))
                     .add(aml::name("_UID", aml::integer(uid)))
                     .add(sta_present())
                     .add(aml::name("_CRS", *crs))
                     .take();
    if (!terms) return std::unexpected(terms.error());
    return aml::device(name, *terms);
}

Result<Bytes> com1_device() {
    auto irq = aml::irq_no_flags(Serial::kCom1Irq);
    if (!irq) return std::unexpected(irq.error());
    return plain_device("COM1", aml::eisa_id("PNP0501"), 0,
                        aml::resource_template({aml::io(Serial::kCom1Port, Serial::kRegisterCount), *irq}));
}

// QEMU's pvpanic ID, which the stock kernel's pvpanic-mmio driver binds (it takes an I/O port too).
Result<Bytes> pvpanic_device() {
    return plain_device("PEVT", aml::string("QEMU0001"), 0,
                        aml::resource_template({aml::io(Pvpanic::kPort, Pvpanic::kPortSpan)}));
}

Result<Bytes> virtio_device(size_t index, const AcpiConfig::VirtioMmio& dev) {
    // "V" and three hex digits: index < kMaxVirtioDevices was checked.
    constexpr std::string_view kHex = "0123456789ABCDEF";
    const std::string name{'V', kHex[(index >> 8) & 0xf], kHex[(index >> 4) & 0xf], kHex[index & 0xf]};
    auto mem = aml::memory32_fixed(true, dev.base, dev.size);
    if (!mem) return std::unexpected(with_context("virtio-mmio device " + std::to_string(index), mem.error()));
    return plain_device(name, aml::string("LNRO0005"), index,
                        aml::resource_template({*mem, aml::interrupt({.edge = true}, dev.irq)}));
}

// The PCI host bridge: bus 0, its configuration ports, all other I/O ports passed down to the bus,
// and the BAR window.
Result<Bytes> pci_host_bridge(const AcpiConfig::PciHostBridge& pci) {
    auto hid = aml::eisa_id("PNP0A08");  // PCI Express root bridge
    if (!hid) return std::unexpected(hid.error());
    auto cid = aml::eisa_id("PNP0A03");  // PCI bus, for OSes that know no PNP0A08
    if (!cid) return std::unexpected(cid.error());
    auto mem = aml::dword_memory(pci.mmio_base, pci.mmio_size);
    if (!mem) return std::unexpected(with_context("PCI host bridge", mem.error()));
    auto crs = aml::resource_template({
        aml::word_bus_number(0, 0),
        aml::io(kPciConfigPort, kPciConfigPortCount),
        aml::word_io(0x0000, kPciIoLowLast),
        aml::word_io(kPciIoHighFirst, 0xffff),
        *mem,
    });
    if (!crs) return std::unexpected(crs.error());
    auto terms = Terms()
                     .add(aml::name("_HID", *hid))
                     .add(aml::name("_CID", *cid))
                     // With _HID present the spec says _ADR "should not" be (iasl warns when compiling
                     // the disassembly); QEMU's host bridges carry both and Linux accepts it.
                     .add(aml::name("_ADR", aml::integer(0)))
                     .add(aml::name("_SEG", aml::integer(0)))
                     .add(aml::name("_UID", aml::integer(0)))
                     .add(aml::name("_BBN", aml::integer(0)))
                     .add(aml::name("_CRS", *crs))
                     .take();
    if (!terms) return std::unexpected(terms.error());
    return aml::device("PCI0", *terms);
}

Result<Bytes> build_dsdt(const AcpiConfig& config) {
    Terms sb;
    if (config.serial) sb.add(com1_device());
    if (config.pvpanic) sb.add(pvpanic_device());
    for (size_t i = 0; i < config.virtio.size(); ++i) sb.add(virtio_device(i, config.virtio[i]));
    if (config.pci) sb.add(pci_host_bridge(*config.pci));
    auto sb_terms = sb.take();
    if (!sb_terms) return std::unexpected(sb_terms.error());
    // \_S5_: SLP_TYPa, SLP_TYPb and two reserved values; hardware-reduced OSPM writes SLP_TYPa.
    auto s5 = aml::package({aml::integer(kAcpiS5SleepType), aml::integer(0), aml::integer(0), aml::integer(0)});
    if (!s5) return std::unexpected(s5.error());
    auto body = Terms().add(aml::name("_S5_", *s5)).add(aml::scope("\\_SB_", *sb_terms)).take();
    if (!body) return std::unexpected(body.error());

    Bytes t = start_table("DSDT", 2);  // revision 2: 64-bit integers
    for (const auto& term : *body) append(t, term);
    if (t.size() > UINT32_MAX) return fail("DSDT too large");
    finish_table(t);
    return t;
}

Result<void> validate(const AcpiConfig& config) {
    if (config.num_cpus < 1 || config.num_cpus > kMaxCpus)
        return fail("ACPI: " + std::to_string(config.num_cpus) + " vCPUs, the MADT describes 1 to 255");
    if (config.virtio.size() > kMaxVirtioDevices) return fail("ACPI: more than 4096 virtio-mmio devices");
    for (size_t i = 0; i < config.virtio.size(); ++i) {
        if (config.virtio[i].size == 0) return fail("ACPI: virtio-mmio device " + std::to_string(i) + " has size 0");
        if (config.virtio[i].irq >= kIoApicPins)
            return fail("ACPI: virtio-mmio device " + std::to_string(i) + " uses GSI " +
                        std::to_string(config.virtio[i].irq) + ", the I/O APIC has GSIs 0-23");
    }
    if (config.pci) {
        const auto& pci = *config.pci;
        if (pci.mmio_size == 0) return fail("ACPI: the PCI host bridge's memory window is empty (size 0)");
        if (pci.mmio_size >= k4GiB)  // the DWordMemory length field has 32 bits
            return fail("ACPI: the PCI host bridge's memory window (" + format_size(pci.mmio_size) +
                        ") must be smaller than 4 GiB");
        if (pci.mmio_base >= k4GiB || pci.mmio_size > k4GiB - pci.mmio_base)
            return fail("ACPI: the PCI host bridge's memory window (" + format_size(pci.mmio_size) + " at " +
                        hex_text(pci.mmio_base) + ") must lie below 4 GiB");
    }
    if (!config.base.is_aligned(kTableAlignment)) return fail("ACPI: table base address is not 16-byte aligned");
    return {};
}

}  // namespace

Result<AcpiTables> build_acpi_tables(const AcpiConfig& config) {
    if (auto r = validate(config); !r) return std::unexpected(r.error());
    auto dsdt = build_dsdt(config);
    if (!dsdt) return std::unexpected(dsdt.error());
    Bytes madt = build_madt(config);

    // Layout: RSDP, XSDT, FADT, MADT, DSDT, each 16-byte aligned.
    auto aligned = [](uint64_t n) { return (n + kTableAlignment - 1) & ~(kTableAlignment - 1); };
    uint64_t xsdt_off = aligned(kRsdpSize);
    uint64_t fadt_off = aligned(xsdt_off + kHeaderSize + 2 * 8);
    uint64_t madt_off = aligned(fadt_off + kFadtSize);
    uint64_t dsdt_off = aligned(madt_off + madt.size());
    uint64_t size = dsdt_off + dsdt->size();
    if (!range_fits(config.base.value(), size)) return fail("ACPI: tables would wrap around the address space");
    uint64_t base = config.base.value();

    AcpiTables out;
    out.rsdp = config.base;
    out.size = size;
    out.blobs.emplace_back(GuestAddress(base), build_rsdp(base + xsdt_off));
    out.blobs.emplace_back(GuestAddress(base + xsdt_off), build_xsdt({base + fadt_off, base + madt_off}));
    out.blobs.emplace_back(GuestAddress(base + fadt_off), build_fadt(base + dsdt_off));
    out.blobs.emplace_back(GuestAddress(base + madt_off), std::move(madt));
    out.blobs.emplace_back(GuestAddress(base + dsdt_off), std::move(*dsdt));
    return out;
}

}  // namespace kite
