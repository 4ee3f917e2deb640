#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "devices/legacy/acpi_pm.h"
#include "vmm/arch/x86_64/acpi/tables.h"

using namespace kite;

namespace {

constexpr uint64_t kBase = 0xe0000;

AcpiConfig two_cpus_two_virtio() {
    AcpiConfig c;
    c.num_cpus = 2;
    c.virtio = {{0xd000'0000, 0x1000, 5}, {0xd000'1000, 0x200, 6}};
    c.base = GuestAddress(kBase);
    return c;
}

uint64_t le(const std::vector<uint8_t>& t, size_t offset, int size) {
    uint64_t v = 0;
    for (int i = size - 1; i >= 0; --i) v = (v << 8) | t.at(offset + i);
    return v;
}

uint8_t sum(const std::vector<uint8_t>& t, size_t len) {
    uint8_t s = 0;
    for (size_t i = 0; i < len; ++i) s = static_cast<uint8_t>(s + t.at(i));
    return s;
}

std::string signature(const std::vector<uint8_t>& t) { return std::string(t.begin(), t.begin() + 4); }

// The table blob with this signature, or an empty vector.
const std::vector<uint8_t>& table(const AcpiTables& tables, std::string_view sig) {
    static const std::vector<uint8_t> none;
    for (const auto& [addr, bytes] : tables.blobs)
        if (bytes.size() >= 4 && signature(bytes) == sig) return bytes;
    return none;
}

uint64_t address_of(const AcpiTables& tables, std::string_view sig) {
    for (const auto& [addr, bytes] : tables.blobs)
        if (bytes.size() >= 4 && signature(bytes) == sig) return addr.value();
    return 0;
}

struct Disassembly {
    int status = -1;
    std::string log;  // what iasl printed
    std::string dsl;  // the disassembled table
    int compile_status = -1;
    std::vector<uint8_t> recompiled;  // the disassembly compiled again with optimizations off
};

// Runs `iasl -d` on one table in a fresh temporary directory.
Disassembly disassemble(const std::vector<uint8_t>& bytes) {
    std::string dir_template = (std::filesystem::temp_directory_path() / "kite-acpi-XXXXXX").string();
    std::filesystem::path dir = mkdtemp(dir_template.data());
    {
        std::ofstream out(dir / "table.dat", std::ios::binary);
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    }
    Disassembly d;
    std::string cmd = "cd '" + dir.string() + "' && /usr/bin/iasl -d table.dat > iasl.log 2>&1";
    d.status = std::system(cmd.c_str());
    std::ifstream log(dir / "iasl.log");
    d.log.assign(std::istreambuf_iterator<char>(log), {});
    std::ifstream dsl(dir / "table.dsl");
    d.dsl.assign(std::istreambuf_iterator<char>(dsl), {});
    std::string compile = "cd '" + dir.string() + "' && /usr/bin/iasl -oa -p again table.dsl > compile.log 2>&1";
    d.compile_status = std::system(compile.c_str());
    std::ifstream aml(dir / "again.aml", std::ios::binary);
    d.recompiled.assign(std::istreambuf_iterator<char>(aml), {});
    std::filesystem::remove_all(dir);
    return d;
}

bool contains(const std::string& text, std::string_view what) { return text.find(what) != std::string::npos; }

}  // namespace

TEST_CASE("every table's checksum sums to zero and its header length matches its size") {
    AcpiTables t = build_acpi_tables(two_cpus_two_virtio()).value();
    const auto& rsdp = t.blobs.at(0).second;

    CHECK(std::string(rsdp.begin(), rsdp.begin() + 8) == "RSD PTR ");
    CHECK(sum(rsdp, 20) == 0);
    CHECK(sum(rsdp, 36) == 0);
    CHECK(le(rsdp, 20, 4) == rsdp.size());
    for (std::string_view sig : {"XSDT", "FACP", "APIC", "DSDT"}) {
        CAPTURE(sig);
        const auto& tbl = table(t, sig);
        CHECK(le(tbl, 4, 4) == tbl.size());
        CHECK(sum(tbl, tbl.size()) == 0);
    }
}

TEST_CASE("RSDP points at the XSDT, the XSDT at the FADT and MADT, the FADT at the DSDT") {
    AcpiTables t = build_acpi_tables(two_cpus_two_virtio()).value();
    const auto& rsdp = t.blobs.at(0).second;
    const auto& xsdt = table(t, "XSDT");

    CHECK(t.rsdp.value() == kBase);
    CHECK(t.blobs.at(0).first.value() == kBase);
    CHECK(rsdp.at(15) == 2);
    CHECK(le(rsdp, 24, 8) == address_of(t, "XSDT"));
    CHECK(xsdt.size() == 36 + 2 * 8);
    CHECK(le(xsdt, 36, 8) == address_of(t, "FACP"));
    CHECK(le(xsdt, 44, 8) == address_of(t, "APIC"));
    CHECK(le(table(t, "FACP"), 140, 8) == address_of(t, "DSDT"));
    CHECK(le(table(t, "FACP"), 40, 4) == 0);  // 32-bit DSDT must be 0 when X_DSDT is set
}

TEST_CASE("tables are 16-byte aligned, disjoint and inside [base, base + size)") {
    AcpiTables t = build_acpi_tables(two_cpus_two_virtio()).value();
    uint64_t end_of_previous = kBase;

    for (const auto& [addr, bytes] : t.blobs) {
        CHECK(addr.value() % 16 == 0);
        CHECK(addr.value() >= end_of_previous);
        end_of_previous = addr.value() + bytes.size();
    }
    CHECK(end_of_previous == kBase + t.size);
}

TEST_CASE("FADT is hardware-reduced with sleep and reset registers at the ACPI PM device's ports") {
    AcpiTables t = build_acpi_tables(two_cpus_two_virtio()).value();
    const auto& fadt = table(t, "FACP");

    CHECK(fadt.size() == 276);
    CHECK(fadt.at(8) == 6);
    CHECK((le(fadt, 112, 4) & (1u << 20)) != 0);  // HW_REDUCED_ACPI
    CHECK((le(fadt, 112, 4) & (1u << 10)) != 0);  // RESET_REG_SUP
    CHECK(fadt.at(116) == 1);                      // reset register in system I/O
    CHECK(le(fadt, 120, 8) == kAcpiResetPort);
    CHECK(fadt.at(128) == kAcpiResetValue);
    CHECK(fadt.at(244) == 1);
    CHECK(le(fadt, 248, 8) == kAcpiSleepControlPort);
    CHECK(fadt.at(256) == 1);
    CHECK(le(fadt, 260, 8) == kAcpiSleepStatusPort);
}

TEST_CASE("MADT lists one enabled local APIC per vCPU and the I/O APIC, no PIC and no override") {
    AcpiConfig config = two_cpus_two_virtio();
    config.num_cpus = 3;
    AcpiTables t = build_acpi_tables(config).value();
    const auto& madt = table(t, "APIC");

    CHECK(le(madt, 36, 4) == 0xfee00000);
    CHECK(le(madt, 40, 4) == 0);  // no PCAT_COMPAT
    CHECK(madt.size() == 44 + 3 * 8 + 12);
    CHECK(madt.at(44 + 2 * 8) == 0);      // type: processor local APIC
    CHECK(madt.at(44 + 2 * 8 + 3) == 2);  // APIC ID of the third vCPU
    CHECK(le(madt, 44 + 2 * 8 + 4, 4) == 1);
    CHECK(madt.at(44 + 3 * 8) == 1);  // type: I/O APIC
    CHECK(le(madt, 44 + 3 * 8 + 4, 4) == 0xfec00000);
}

TEST_CASE("iasl disassembles the DSDT: virtio devices, COM1 and _S5_ are there") {
    AcpiTables t = build_acpi_tables(two_cpus_two_virtio()).value();
    Disassembly d = disassemble(table(t, "DSDT"));

    CHECK(d.status == 0);
    CHECK_FALSE(contains(d.log, "Warning"));
    CHECK_FALSE(contains(d.log, "Error"));
    CHECK(contains(d.dsl, "Device (V000)"));
    CHECK(contains(d.dsl, "Device (V001)"));
    CHECK(contains(d.dsl, "Name (_HID, \"LNRO0005\")"));
    CHECK(contains(d.dsl, "0xD0001000,         // Address Base"));
    CHECK(contains(d.dsl, "0x00000200,         // Address Length"));
    CHECK(contains(d.dsl, "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )"));
    CHECK(contains(d.dsl, "0x00000006,"));
    CHECK(contains(d.dsl, "EisaId (\"PNP0501\")"));
    CHECK(contains(d.dsl, "0x03F8,             // Range Minimum"));
    CHECK(contains(d.dsl, "{4}"));
    CHECK(contains(d.dsl, "_S5_"));
    CHECK(contains(d.dsl, "0x05, \n        Zero, \n        Zero, \n        Zero"));
}


TEST_CASE("iasl disassembles a DSDT with 300 virtio devices (multi-byte PkgLengths)") {
    AcpiConfig config = two_cpus_two_virtio();
    config.virtio.clear();
    for (uint32_t i = 0; i < 300; ++i) config.virtio.push_back({0xd000'0000 + i * 0x1000, 0x1000, 5 + i % 19});
    AcpiTables t = build_acpi_tables(config).value();
    const auto& dsdt = table(t, "DSDT");

    Disassembly d = disassemble(dsdt);

    CHECK(dsdt.size() > 4096);  // the \_SB_ scope needs a 3-byte PkgLength
    CHECK(d.status == 0);
    CHECK_FALSE(contains(d.log, "Warning"));
    CHECK_FALSE(contains(d.log, "Error"));
    CHECK(contains(d.dsl, "Device (V12B)"));  // device 299
    CHECK(contains(d.dsl, "0xD012B000,         // Address Base"));
}

TEST_CASE("iasl decodes the FADT, MADT and XSDT without complaint") {
    AcpiTables t = build_acpi_tables(two_cpus_two_virtio()).value();

    Disassembly fadt = disassemble(table(t, "FACP"));
    Disassembly madt = disassemble(table(t, "APIC"));
    Disassembly xsdt = disassemble(table(t, "XSDT"));

    CHECK(fadt.status == 0);
    CHECK_FALSE(contains(fadt.log, "Warning"));
    CHECK(contains(fadt.dsl, "Hardware Reduced (V5) : 1"));
    CHECK(contains(fadt.dsl, "Address : 0000000000000600"));
    CHECK(madt.status == 0);
    CHECK_FALSE(contains(madt.log, "Warning"));
    CHECK(contains(madt.dsl, "Local Apic ID : 01"));
    CHECK(contains(madt.dsl, "[I/O APIC]"));
    CHECK(xsdt.status == 0);
    CHECK_FALSE(contains(xsdt.log, "Warning"));
    CHECK(contains(xsdt.dsl, "ACPI Table Address   1 : 00000000000E"));
}

TEST_CASE("iasl disassembles the pvpanic device: QEMU0001 on I/O port 0x505, which pvpanic-mmio binds") {
    AcpiTables t = build_acpi_tables(two_cpus_two_virtio()).value();
    Disassembly d = disassemble(table(t, "DSDT"));

    CHECK(d.status == 0);
    CHECK_FALSE(contains(d.log, "Warning"));
    CHECK(contains(d.dsl, "Device (PEVT)"));
    CHECK(contains(d.dsl, "Name (_HID, \"QEMU0001\")"));
    CHECK(contains(d.dsl, "0x0505,             // Range Minimum"));
}

TEST_CASE("without serial the DSDT has no COM1") {
    AcpiConfig config = two_cpus_two_virtio();
    config.serial = false;

    AcpiTables t = build_acpi_tables(config).value();
    Disassembly d = disassemble(table(t, "DSDT"));

    CHECK_FALSE(contains(d.dsl, "PNP0501"));
    CHECK(contains(d.dsl, "LNRO0005"));
}

TEST_CASE("bad configurations are refused") {
    AcpiConfig no_cpus = two_cpus_two_virtio();
    no_cpus.num_cpus = 0;
    AcpiConfig too_many_cpus = two_cpus_two_virtio();
    too_many_cpus.num_cpus = 256;
    AcpiConfig high_virtio = two_cpus_two_virtio();
    high_virtio.virtio.push_back({0x1'0000'0000, 0x1000, 7});
    AcpiConfig straddling_virtio = two_cpus_two_virtio();
    straddling_virtio.virtio.push_back({0xffff'f000, 0x2000, 7});
    AcpiConfig empty_virtio = two_cpus_two_virtio();
    empty_virtio.virtio.push_back({0xd000'2000, 0, 7});
    AcpiConfig gsi_beyond_ioapic = two_cpus_two_virtio();
    gsi_beyond_ioapic.virtio.push_back({0xd000'2000, 0x1000, 24});
    AcpiConfig unaligned = two_cpus_two_virtio();
    unaligned.base = GuestAddress(kBase + 8);
    AcpiConfig wrapping = two_cpus_two_virtio();
    wrapping.base = GuestAddress(UINT64_MAX - 0xf);

    CHECK_FALSE(build_acpi_tables(no_cpus).has_value());
    CHECK_FALSE(build_acpi_tables(too_many_cpus).has_value());
    CHECK_FALSE(build_acpi_tables(high_virtio).has_value());
    CHECK_FALSE(build_acpi_tables(straddling_virtio).has_value());
    CHECK_FALSE(build_acpi_tables(empty_virtio).has_value());
    CHECK_FALSE(build_acpi_tables(gsi_beyond_ioapic).has_value());
    CHECK_FALSE(build_acpi_tables(unaligned).has_value());
    CHECK_FALSE(build_acpi_tables(wrapping).has_value());
}

namespace {

constexpr uint64_t kPciWindowBase = 0xc000'0000;
constexpr uint64_t kPciWindowSize = 0x1000'0000;

AcpiConfig with_pci() {
    AcpiConfig c = two_cpus_two_virtio();
    c.pci = AcpiConfig::PciHostBridge{.mmio_base = kPciWindowBase, .mmio_size = kPciWindowSize};
    return c;
}

bool contains_bytes(const std::vector<uint8_t>& haystack, const std::vector<uint8_t>& needle) {
    return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end()) != haystack.end();
}

std::vector<uint8_t> concat(std::initializer_list<std::vector<uint8_t>> parts) {
    std::vector<uint8_t> out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

}  // namespace

TEST_CASE("the disassembled DSDT, with and without the PCI host bridge, compiles back to the same AML") {
    for (bool pci : {false, true}) {
        CAPTURE(pci);
        AcpiTables t = build_acpi_tables(pci ? with_pci() : two_cpus_two_virtio()).value();
        const auto& dsdt = table(t, "DSDT");

        Disassembly d = disassemble(dsdt);

        CHECK(d.compile_status == 0);
        REQUIRE(d.recompiled.size() == dsdt.size());
        // The header differs (compiler ID and checksum); the definition block must not.
        CHECK(std::vector<uint8_t>(d.recompiled.begin() + 36, d.recompiled.end()) ==
              std::vector<uint8_t>(dsdt.begin() + 36, dsdt.end()));
    }
}

TEST_CASE("FADT IA-PC boot flags: VGA and CMOS RTC not present, MSI not declared unsupported") {
    AcpiTables t = build_acpi_tables(with_pci()).value();
    const auto& fadt = table(t, "FACP");

    uint64_t boot_arch = le(fadt, 109, 2);
    CHECK((boot_arch & (1u << 3)) == 0);  // MSI Not Supported
    CHECK((boot_arch & (1u << 2)) != 0);  // VGA Not Present
    CHECK((boot_arch & (1u << 5)) != 0);  // CMOS RTC Not Present
}

TEST_CASE("with pci set the DSDT declares the host bridge PCI0 byte for byte") {
    AcpiTables t = build_acpi_tables(with_pci()).value();
    const auto& dsdt = table(t, "DSDT");

    // Worked out by hand from ACPI 6.5 chapter 20 (AML) and section 6.4 (resource descriptors).
    const std::vector<uint8_t> crs_descriptors = concat({
        // WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, 0, 0, 0, 1)
        {0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00},
        // IO (Decode16, 0x0cf8, 0x0cf8, 1, 8)
        {0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08},
        // WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, 0, 0x0cf7, 0, 0x0cf8)
        {0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x00, 0xf7, 0x0c, 0x00, 0x00, 0xf8, 0x0c},
        // WordIO (..., 0, 0x0d00, 0xffff, 0, 0xf300)
        {0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x0d, 0xff, 0xff, 0x00, 0x00, 0x00, 0xf3},
        // DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,
        //              0, 0xc0000000, 0xcfffffff, 0, 0x10000000)
        {0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0,
         0xff, 0xff, 0xff, 0xcf, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10},
        {0x79, 0x00},  // End Tag
    });
    REQUIRE(crs_descriptors.size() == 84);
    const std::vector<uint8_t> device = concat({
        // DeviceOp, PkgLength 144 = 0x090 (two bytes: 0x40 | low nibble 0, then 0x09), "PCI0"
        {0x5b, 0x82, 0x40, 0x09, 'P', 'C', 'I', '0'},
        {0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x08},  // EisaId ("PNP0A08") = 0x080ad041
        {0x08, '_', 'C', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x03},  // EisaId ("PNP0A03") = 0x030ad041
        {0x08, '_', 'A', 'D', 'R', 0x00},
        {0x08, '_', 'S', 'E', 'G', 0x00},
        {0x08, '_', 'U', 'I', 'D', 0x00},
        {0x08, '_', 'B', 'B', 'N', 0x00},
        // Name (_CRS, Buffer): BufferOp, PkgLength 88 = 0x058 (0x48, 0x05), BufferSize ByteConst 84
        {0x08, '_', 'C', 'R', 'S', 0x11, 0x48, 0x05, 0x0a, 0x54},
        crs_descriptors,
    });
    REQUIRE(device.size() == 2 + 144);

    CHECK(contains_bytes(dsdt, device));
}

TEST_CASE("without pci the DSDT has no PCI0") {
    AcpiTables t = build_acpi_tables(two_cpus_two_virtio()).value();
    const auto& dsdt = table(t, "DSDT");

    CHECK_FALSE(contains_bytes(dsdt, {'P', 'C', 'I', '0'}));
    CHECK_FALSE(contains_bytes(dsdt, {0x41, 0xd0, 0x0a, 0x08}));  // PNP0A08
}

TEST_CASE("iasl disassembles the DSDT with the PCI host bridge") {
    AcpiTables t = build_acpi_tables(with_pci()).value();
    Disassembly d = disassemble(table(t, "DSDT"));

    CHECK(d.status == 0);
    CHECK_FALSE(contains(d.log, "Warning"));
    CHECK_FALSE(contains(d.log, "Error"));
    CHECK(contains(d.dsl, "Device (PCI0)"));
    CHECK(contains(d.dsl, "Name (_HID, EisaId (\"PNP0A08\")"));
    CHECK(contains(d.dsl, "Name (_CID, EisaId (\"PNP0A03\")"));
    CHECK(contains(d.dsl, "Name (_SEG, Zero)"));
    CHECK(contains(d.dsl, "Name (_BBN, Zero)"));
    CHECK(contains(d.dsl, "WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,"));
    CHECK(contains(d.dsl, "WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,"));
    CHECK(contains(d.dsl, "0x0CF7,             // Range Maximum"));
    CHECK(contains(d.dsl, "0x0D00,             // Range Minimum"));
    CHECK(contains(d.dsl, "DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,"));
    CHECK(contains(d.dsl, "0xCFFFFFFF,         // Range Maximum"));
    CHECK(contains(d.dsl, "0x10000000,         // Length"));
    CHECK_FALSE(contains(d.dsl, "_PRT"));
    CHECK_FALSE(contains(d.dsl, "_OSC"));
}

TEST_CASE("a PCI memory window that is empty or not below 4 GiB is refused") {
    auto refused = [](uint64_t base, uint64_t size) {
        AcpiConfig c = two_cpus_two_virtio();
        c.pci = AcpiConfig::PciHostBridge{.mmio_base = base, .mmio_size = size};
        auto r = build_acpi_tables(c);
        if (r) return std::string();
        return r.error().message;
    };

    CHECK(contains(refused(kPciWindowBase, 0), "PCI host bridge's memory window is empty"));
    CHECK(contains(refused(0xf000'0000, 0x2000'0000), "must lie below 4 GiB"));
    CHECK(contains(refused(0x1'0000'0000, 0x1000), "must lie below 4 GiB"));
    CHECK(contains(refused(UINT64_MAX - 0xfff, 0x2000), "must lie below 4 GiB"));
    CHECK(contains(refused(0, 0x1'0000'0000), "smaller than 4 GiB"));
    CHECK(refused(0xf000'0000, 0x1000'0000).empty());  // ends exactly at 4 GiB
}
