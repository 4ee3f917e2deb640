// The key table of vmm/config/keys.h rendered for users: plain text for `kite run --help` and `kite keys`,
// Markdown for README.md (`kite keys --markdown`). Both are built once and kept.
#include <string>

#include "vmm/config/keys.h"

namespace kite {

namespace {

constexpr std::string_view kIntro = "Config file (YAML). Relative paths are relative to the file's folder; a flag "
                                    "overrides its key.\n";
// Notes after the keys, one line each.
constexpr std::string_view kNotes[] = {
    "Shorthand: '- block: disk.img', '- net: tap0', '- rng', '- vhost-user-blk: /tmp/vub.sock' (the first key).",
    "Sizes: bytes, or a number with K, M, G or T (powers of 1024; 4KiB works too): 4096, 64K, 512M, 1G.",
    "Booleans: true|false|yes|no|on|off.",
};

void notes(std::string& out, std::string_view prefix) {
    for (std::string_view note : kNotes) {
        out += prefix;
        out += note;
        out += '\n';
    }
}
constexpr size_t kMeaningColumn = 36;

bool in_devices(KeyScope scope) { return scope != KeyScope::Top && scope != KeyScope::Memory; }

// "  left      meaning", the meaning on the next line when left is too long.
void line(std::string& out, const std::string& left, std::string_view meaning) {
    out += left;
    if (left.size() + 1 > kMeaningColumn) {
        out += '\n';
        out.append(kMeaningColumn, ' ');
    } else {
        out.append(kMeaningColumn - left.size(), ' ');
    }
    out += meaning;
    out += '\n';
}

std::string annotated(const ConfigKey& key) {
    std::string text(key.meaning);
    std::string notes;
    if (key.required) notes = "required";
    if (!key.default_value.empty()) notes = "default " + std::string(key.default_value);
    if (!key.flag.empty()) notes += (notes.empty() ? "" : "; ") + std::string(key.flag);
    if (!notes.empty()) text += " (" + notes + ")";
    return text;
}

void key_line(std::string& out, const ConfigKey& key, size_t indent) {
    line(out, std::string(indent, ' ') + std::string(key.key) + ": " + std::string(key.syntax), annotated(key));
}

std::string render_text() {
    std::string out(kIntro);
    for (const ConfigKey& key : config_keys()) {
        if (key.scope == KeyScope::Top) key_line(out, key, 2);
        if (key.scope == KeyScope::Memory) key_line(out, key, 4);
    }
    for (const DeviceKind& kind : device_kind_table()) {
        line(out, "    - " + std::string(kind.name), kind.meaning);
        line(out, "", std::string(kind.flag) + (kind.scope == KeyScope::Rng ? "" : " " + device_flag_syntax(kind)));
        for (const ConfigKey& key : config_keys()) {
            if (key.scope == kind.scope) key_line(out, key, 8);
        }
    }
    out += "    every vhost-user kind also takes:\n";
    for (const ConfigKey& key : config_keys()) {
        if (key.scope == KeyScope::VhostUserAny) key_line(out, key, 8);
    }
    notes(out, "");
    return out;
}

// Markdown table cells: '|' would end the cell.
std::string cell(std::string_view text, bool code) {
    if (text.empty()) return " ";
    std::string out = code ? "`" : "";
    for (char c : text) {
        if (c == '|') out += '\\';
        out += c;
    }
    return out + (code ? "`" : "");
}

std::string scope_name(KeyScope scope) {
    if (scope == KeyScope::Memory) return "memory.";
    if (scope == KeyScope::VhostUserAny) return "vhost-user*.";
    for (const DeviceKind& kind : device_kind_table()) {
        if (kind.scope == scope) return std::string(kind.name) + ".";
    }
    return "";
}

std::string row(std::string_view name, std::string_view flag, std::string_view syntax, std::string_view fallback,
                std::string_view meaning) {
    return "| " + cell(name, true) + " | " + cell(flag, true) + " | " + cell(syntax, true) + " | " +
           cell(fallback, false) + " | " + cell(meaning, false) + " |\n";
}

std::string render_markdown() {
    std::string out(kIntro);
    out += "\n| key | flag | value | default | meaning |\n| --- | --- | --- | --- | --- |\n";
    auto key_row = [&](const ConfigKey& key) {
        std::string fallback = key.required ? "required" : std::string(key.default_value);
        out += row(scope_name(key.scope) + std::string(key.key), key.flag, key.syntax, fallback, key.meaning);
    };
    for (const ConfigKey& key : config_keys()) {
        if (!in_devices(key.scope)) key_row(key);
    }
    for (const DeviceKind& kind : device_kind_table()) {
        std::string flag(kind.flag);
        if (kind.scope != KeyScope::Rng) flag += " " + device_flag_syntax(kind);
        out += row("devices: - " + std::string(kind.name), flag, "", "", kind.meaning);
        for (const ConfigKey& key : config_keys()) {
            if (key.scope == kind.scope) key_row(key);
        }
    }
    for (const ConfigKey& key : config_keys()) {
        if (key.scope == KeyScope::VhostUserAny) key_row(key);
    }
    out += "\n";
    notes(out, "- ");  // a Markdown list: plain lines would run together into one paragraph
    return out;
}

}  // namespace

std::string_view config_reference() {
    static const std::string text = render_text();
    return text;
}

std::string_view config_reference_markdown() {
    static const std::string text = render_markdown();
    return text;
}

}  // namespace kite
