#include "vmm/arch/x86_64/acpi/aml.h"

#include <string>

namespace kite::aml {
namespace {

constexpr uint8_t kZeroOp = 0x00;
constexpr uint8_t kOneOp = 0x01;
constexpr uint8_t kNameOp = 0x08;
constexpr uint8_t kBytePrefix = 0x0a;
constexpr uint8_t kWordPrefix = 0x0b;
constexpr uint8_t kDWordPrefix = 0x0c;
constexpr uint8_t kStringPrefix = 0x0d;
constexpr uint8_t kQWordPrefix = 0x0e;
constexpr uint8_t kScopeOp = 0x10;
constexpr uint8_t kBufferOp = 0x11;
constexpr uint8_t kPackageOp = 0x12;
constexpr uint8_t kMethodOp = 0x14;
constexpr uint8_t kDualNamePrefix = 0x2e;
constexpr uint8_t kMultiNamePrefix = 0x2f;
constexpr uint8_t kExtOpPrefix = 0x5b;
constexpr uint8_t kDeviceOp = 0x82;  // after kExtOpPrefix
constexpr uint8_t kRootChar = '\\';
constexpr uint8_t kParentPrefixChar = '^';
constexpr uint8_t kReturnOp = 0xa4;

constexpr uint8_t kIoDescriptor = 0x47;        // small, 7 bytes of data
constexpr uint8_t kIrqNoFlagsDescriptor = 0x22;  // small, 2 bytes of data
constexpr uint8_t kEndTag = 0x79;              // small, 1 byte of data
constexpr uint8_t kMemory32FixedDescriptor = 0x86;
constexpr uint8_t kExtendedInterruptDescriptor = 0x89;
constexpr uint8_t kDWordAddressSpaceDescriptor = 0x87;
constexpr uint8_t kWordAddressSpaceDescriptor = 0x88;

// Address space descriptors (ACPI 6.5, section 6.4.3.5).
constexpr uint8_t kResourceTypeMemory = 0;
constexpr uint8_t kResourceTypeIo = 1;
constexpr uint8_t kResourceTypeBusNumber = 2;
// General flags: bit 0 clear = ResourceProducer, bit 1 clear = PosDecode, bit 2 _MIF, bit 3 _MAF.
constexpr uint8_t kProducerMinMaxFixed = 0x0c;
// Type-specific flags. Memory: bit 0 _RW, bits 2:1 _MEM (0 = NonCacheable), bits 4:3 _MTP
// (0 = AddressRangeMemory), bit 5 _TTP (0 = TypeStatic). I/O: bits 1:0 _RNG (3 = EntireRange),
// bit 4 _TTP, bit 5 _TRS, all 0 else. Bus number: none.
constexpr uint8_t kMemoryNonCacheableReadWrite = 0x01;
constexpr uint8_t kIoEntireRange = 0x03;
constexpr uint8_t kBusNumberFlags = 0x00;

void append(Bytes& out, const Bytes& more) { out.insert(out.end(), more.begin(), more.end()); }

void append_le(Bytes& out, uint64_t value, int size) {
    for (int i = 0; i < size; ++i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

// A Word Address Space Descriptor for the fixed range [min, max], without a resource source.
Bytes word_address_space(uint8_t type, uint8_t type_flags, uint16_t min, uint16_t max) {
    Bytes out{kWordAddressSpaceDescriptor};
    append_le(out, 13, 2);  // data length: type, two flag bytes and five 16-bit fields
    out.push_back(type);
    out.push_back(kProducerMinMaxFixed);
    out.push_back(type_flags);
    append_le(out, 0, 2);  // granularity: 0 for a fixed range
    append_le(out, min, 2);
    append_le(out, max, 2);
    append_le(out, 0, 2);  // translation offset
    append_le(out, static_cast<uint16_t>(max - min + 1), 2);
    return out;
}

bool is_lead_name_char(char c) { return (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_lead_name_char(c) || (c >= '0' && c <= '9'); }

Result<Bytes> name_seg(std::string_view seg) {
    if (seg.empty() || seg.size() > 4) return fail("AML: name segment '" + std::string(seg) + "' is not 1-4 characters");
    if (!is_lead_name_char(seg[0])) return fail("AML: name segment '" + std::string(seg) + "' starts badly");
    Bytes out;
    for (char c : seg) {
        if (!is_name_char(c)) return fail("AML: bad character in name segment '" + std::string(seg) + "'");
        out.push_back(static_cast<uint8_t>(c));
    }
    out.resize(4, '_');
    return out;
}

// opcode bytes, PkgLength, then the body.
Result<Bytes> with_pkg_length(Bytes opcode, const Bytes& body) {
    auto len = pkg_length(body.size());
    if (!len) return std::unexpected(len.error());
    append(opcode, *len);
    append(opcode, body);
    return opcode;
}

Result<Bytes> named_block(Bytes opcode, std::string_view path, const Bytes& prefix, const std::vector<Bytes>& terms) {
    auto body = name_string(path);
    if (!body) return std::unexpected(body.error());
    append(*body, prefix);
    for (const auto& t : terms) append(*body, t);
    return with_pkg_length(std::move(opcode), *body);
}

}  // namespace

Result<Bytes> pkg_length(size_t content_len) {
    // One byte holds up to 63 in bits 0-5; with n = 1..3 following bytes, bits 6-7 hold n, bits 0-3
    // the low nibble and each following byte 8 more bits. The length includes these bytes.
    if (content_len + 1 <= 0x3f) return Bytes{static_cast<uint8_t>(content_len + 1)};
    for (size_t n = 1; n <= 3; ++n) {
        size_t total = content_len + 1 + n;
        if (total < (size_t{1} << (4 + 8 * n))) {
            Bytes out{static_cast<uint8_t>((n << 6) | (total & 0x0f))};
            for (size_t i = 0; i < n; ++i) out.push_back(static_cast<uint8_t>(total >> (4 + 8 * i)));
            return out;
        }
    }
    return fail("AML: package of " + std::to_string(content_len) + " bytes is too large for a PkgLength");
}

Result<Bytes> name_string(std::string_view path) {
    Bytes out;
    if (!path.empty() && path.front() == kRootChar) {
        out.push_back(kRootChar);
        path.remove_prefix(1);
    } else {
        while (!path.empty() && path.front() == kParentPrefixChar) {
            out.push_back(kParentPrefixChar);
            path.remove_prefix(1);
        }
    }
    std::vector<Bytes> segs;
    while (!path.empty()) {
        size_t dot = path.find('.');
        auto seg = name_seg(path.substr(0, dot));
        if (!seg) return std::unexpected(seg.error());
        segs.push_back(std::move(*seg));
        if (dot == std::string_view::npos) break;
        path.remove_prefix(dot + 1);
        if (path.empty()) return fail("AML: name path ends with '.'");
    }
    if (segs.empty()) {
        if (out.empty()) return fail("AML: empty name");
        out.push_back(kZeroOp);  // NullName: "\" alone or "^" alone
    } else if (segs.size() == 2) {
        out.push_back(kDualNamePrefix);
    } else if (segs.size() > 2) {
        if (segs.size() > 255) return fail("AML: name path with more than 255 segments");
        out.push_back(kMultiNamePrefix);
        out.push_back(static_cast<uint8_t>(segs.size()));
    }
    for (const auto& s : segs) append(out, s);
    return out;
}

Bytes integer(uint64_t value) {
    if (value == 0) return {kZeroOp};
    if (value == 1) return {kOneOp};
    Bytes out;
    if (value <= 0xff) {
        out.push_back(kBytePrefix);
        append_le(out, value, 1);
    } else if (value <= 0xffff) {
        out.push_back(kWordPrefix);
        append_le(out, value, 2);
    } else if (value <= 0xffffffff) {
        out.push_back(kDWordPrefix);
        append_le(out, value, 4);
    } else {
        out.push_back(kQWordPrefix);
        append_le(out, value, 8);
    }
    return out;
}

Bytes dword(uint32_t value) {
    Bytes out{kDWordPrefix};
    append_le(out, value, 4);
    return out;
}

Result<Bytes> string(std::string_view text) {
    Bytes out{kStringPrefix};
    for (char c : text) {
        if (c < 0x01) return fail("AML: string holds a character outside ASCII 0x01-0x7f");
        out.push_back(static_cast<uint8_t>(c));
    }
    out.push_back(0);
    return out;
}

Result<Bytes> eisa_id(std::string_view id) {
    auto bad = [&] { return fail("AML: '" + std::string(id) + "' is not an EISA ID like PNP0501"); };
    if (id.size() != 7) return bad();
    uint32_t value = 0;
    for (int i = 0; i < 3; ++i) {
        if (id[i] < 'A' || id[i] > 'Z') return bad();
        value = (value << 5) | static_cast<uint32_t>(id[i] - 0x40);
    }
    for (int i = 3; i < 7; ++i) {
        char c = id[i];
        uint32_t digit;
        if (c >= '0' && c <= '9') digit = c - '0';
        else if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
        else return bad();
        value = (value << 4) | digit;
    }
    // 15 bits of letters and 16 of product code (bit 31 clear), stored most significant byte first.
    uint32_t swapped = __builtin_bswap32(value);
    return dword(swapped);
}

Result<Bytes> name(std::string_view path, const Bytes& object) {
    auto out = name_string(path);
    if (!out) return std::unexpected(out.error());
    out->insert(out->begin(), kNameOp);
    append(*out, object);
    return out;
}

Result<Bytes> package(const std::vector<Bytes>& elements) {
    if (elements.size() > 255) return fail("AML: Package with more than 255 elements");
    Bytes body{static_cast<uint8_t>(elements.size())};
    for (const auto& e : elements) append(body, e);
    return with_pkg_length({kPackageOp}, body);
}

Result<Bytes> scope(std::string_view path, const std::vector<Bytes>& terms) {
    return named_block({kScopeOp}, path, {}, terms);
}

Result<Bytes> device(std::string_view path, const std::vector<Bytes>& terms) {
    return named_block({kExtOpPrefix, kDeviceOp}, path, {}, terms);
}

Result<Bytes> method(std::string_view path, unsigned arg_count, bool serialized, const std::vector<Bytes>& terms) {
    if (arg_count > 7) return fail("AML: a Method takes at most 7 arguments");
    uint8_t flags = static_cast<uint8_t>(arg_count | (serialized ? 0x08 : 0));  // sync level 0
    return named_block({kMethodOp}, path, {flags}, terms);
}

Bytes return_value(const Bytes& object) {
    Bytes out{kReturnOp};
    append(out, object);
    return out;
}

Bytes io(uint16_t base, uint8_t length) {
    Bytes out{kIoDescriptor, 0x01};  // decodes 16 address bits
    append_le(out, base, 2);           // minimum base
    append_le(out, base, 2);           // maximum base
    out.push_back(1);                  // alignment
    out.push_back(length);
    return out;
}

Result<Bytes> irq_no_flags(unsigned irq) {
    if (irq > 15) return fail("AML: IRQNoFlags takes ISA IRQs 0-15, not " + std::to_string(irq));
    Bytes out{kIrqNoFlagsDescriptor};
    append_le(out, 1u << irq, 2);
    return out;
}

Result<Bytes> memory32_fixed(bool writable, uint64_t base, uint64_t length) {
    if (base > 0xffffffff || length > 0xffffffff || length > 0x1'0000'0000 - base)
        return fail("AML: Memory32Fixed range does not fit below 4 GiB");
    Bytes out{kMemory32FixedDescriptor};
    append_le(out, 9, 2);  // data length
    out.push_back(writable ? 1 : 0);
    append_le(out, base, 4);
    append_le(out, length, 4);
    return out;
}

Bytes interrupt(InterruptFlags flags, uint32_t gsi) {
    Bytes out{kExtendedInterruptDescriptor};
    append_le(out, 6, 2);  // data length: flags, count, one 32-bit interrupt number
    uint8_t bits = 0x01;   // resource consumer
    if (flags.edge) bits |= 0x02;
    if (flags.active_low) bits |= 0x04;
    if (flags.shared) bits |= 0x08;
    out.push_back(bits);
    out.push_back(1);
    append_le(out, gsi, 4);
    return out;
}

Bytes word_bus_number(uint16_t min, uint16_t max) {
    return word_address_space(kResourceTypeBusNumber, kBusNumberFlags, min, max);
}

Bytes word_io(uint16_t min, uint16_t max) { return word_address_space(kResourceTypeIo, kIoEntireRange, min, max); }

Result<Bytes> dword_memory(uint64_t base, uint64_t length) {
    if (length == 0) return fail("AML: DWordMemory range is empty");
    if (base > 0xffffffff || length > 0xffffffff || length > 0x1'0000'0000 - base)
        return fail("AML: DWordMemory range does not fit below 4 GiB");
    Bytes out{kDWordAddressSpaceDescriptor};
    append_le(out, 23, 2);  // data length: type, two flag bytes and five 32-bit fields
    out.push_back(kResourceTypeMemory);
    out.push_back(kProducerMinMaxFixed);
    out.push_back(kMemoryNonCacheableReadWrite);
    append_le(out, 0, 4);  // granularity: 0 for a fixed range
    append_le(out, base, 4);
    append_le(out, base + length - 1, 4);
    append_le(out, 0, 4);  // translation offset
    append_le(out, length, 4);
    return out;
}

Result<Bytes> resource_template(const std::vector<Bytes>& descriptors) {
    Bytes data;
    for (const auto& d : descriptors) append(data, d);
    data.push_back(kEndTag);
    data.push_back(0);  // checksum 0: "treat as if the checksum matched"
    Bytes body = integer(data.size());  // BufferSize
    append(body, data);
    return with_pkg_length({kBufferOp}, body);
}

}  // namespace kite::aml
