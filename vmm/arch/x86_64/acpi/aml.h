// A small AML (ACPI Machine Language) encoder: just the objects Kite's DSDT needs. Every function
// returns the encoded bytes of one term; composite terms (Scope, Device, Method, Package, Buffer) take
// the encoded bytes of their contents. Encodings follow the ACPI 6.5 specification, chapter 20 (AML)
// and section 6.4 (resource descriptors).
//
// Functions that can be handed something unencodable (a bad name, an object too large for a
// PkgLength, an address above 4 GiB for a 32-bit descriptor) return an error instead of bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace kite::aml {

using Bytes = std::vector<uint8_t>;

// The PkgLength that precedes `content_len` bytes of package contents. The encoded length counts
// itself, so it is 1 byte up to 62 content bytes, then 2 (up to 4093), 3, 4; above 2^28 - 5 fails.
Result<Bytes> pkg_length(size_t content_len);

// NameString: "\\" (root) or "^"s (parents), then NameSegs separated by '.'; a segment of fewer than
// four characters is padded with '_' ("COM1", "\\_SB_.V000", "_S5", "\\").
Result<Bytes> name_string(std::string_view path);

// The shortest integer encoding: ZeroOp, OneOp, Byte/Word/DWord/QWordConst.
Bytes integer(uint64_t value);
// Always a DWordConst (as EISA IDs are).
Bytes dword(uint32_t value);
// A String: ASCII 0x01-0x7f only.
Result<Bytes> string(std::string_view text);
// An EISA ID such as "PNP0501" (three letters and four hex digits) compressed to a DWordConst.
Result<Bytes> eisa_id(std::string_view id);

// Name(path, object)
Result<Bytes> name(std::string_view path, const Bytes& object);
// Package() { elements }: at most 255 elements.
Result<Bytes> package(const std::vector<Bytes>& elements);
// Scope(path) { terms }
Result<Bytes> scope(std::string_view path, const std::vector<Bytes>& terms);
// Device(path) { terms }
Result<Bytes> device(std::string_view path, const std::vector<Bytes>& terms);
// Method(path, arg_count, Serialized/NotSerialized) { terms }: arg_count <= 7.
Result<Bytes> method(std::string_view path, unsigned arg_count, bool serialized, const std::vector<Bytes>& terms);
// Return(object)
Bytes return_value(const Bytes& object);

// Resource descriptors, the contents of a ResourceTemplate.
// IO(Decode16, base, base, 1, length): a fixed range of I/O ports.
Bytes io(uint16_t base, uint8_t length);
// IRQNoFlags() { irq }: an ISA IRQ (0-15), edge, active high, exclusive.
Result<Bytes> irq_no_flags(unsigned irq);
// Memory32Fixed(ReadWrite or ReadOnly, base, length): [base, base + length) must lie below 4 GiB.
Result<Bytes> memory32_fixed(bool writable, uint64_t base, uint64_t length);
// Interrupt(ResourceConsumer, Edge/Level, ActiveHigh/ActiveLow, Exclusive/Shared) { gsi }
struct InterruptFlags {
    bool edge = true;
    bool active_low = false;
    bool shared = false;
};
Bytes interrupt(InterruptFlags flags, uint32_t gsi);
// Address space descriptors (section 6.4.3.5) for a bridge's _CRS: each declares a fixed range
// [min, max] that the bridge produces (decodes and passes down), positive decode, minimum and maximum
// fixed, granularity and translation offset 0, length max - min + 1.
// WordBusNumber(ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, min, max, 0, len).
// Needs min <= max; the length of 0x0000-0xffff does not fit the 16-bit length field.
Bytes word_bus_number(uint16_t min, uint16_t max);
// WordIO(ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, min, max, 0, len).
// Needs min <= max, and not the whole 0x0000-0xffff (as above).
Bytes word_io(uint16_t min, uint16_t max);
// DWordMemory(ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite, 0, base,
// base + length - 1, 0, length): [base, base + length) must be non-empty and lie below 4 GiB, and
// length must fit the 32-bit length field (so not all of 0-4 GiB).
Result<Bytes> dword_memory(uint64_t base, uint64_t length);
// ResourceTemplate() { descriptors }: a Buffer holding the descriptors and an End Tag.
Result<Bytes> resource_template(const std::vector<Bytes>& descriptors);

}  // namespace kite::aml
