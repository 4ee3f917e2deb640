// YAML front-end of the config: walks the document, hands every scalar to the shared setters in
// vmm/config/fields.h, and turns their errors into "<file>:<line>:<column>: <key>: <message>".
// Exceptions are used inside (docs/ARCHITECTURE.md allows them in config parsing) and stop at the public API.
#include "vmm/config/yaml.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include "vmm/config/fields.h"

namespace kite {

namespace {

constexpr size_t kMaxFileBytes = 1 << 20;  // a config is a page of text; this stops `kite validate /dev/zero`

struct ConfigError {
    std::string message;
};

std::string describe(const YAML::Node& node) {
    switch (node.Type()) {
        case YAML::NodeType::Null: return "nothing";
        case YAML::NodeType::Sequence: return "a list";
        case YAML::NodeType::Map: return "a map";
        default: return quote_value(node.Scalar());
    }
}

class Reader {
public:
    Reader(std::string_view file, const std::string& base_dir) : file_(file), context_{base_dir} {}

    VmConfig read(std::string_view text, const ParseOptions& options) {
        std::string owned(text);
        check_single_document(owned);
        YAML::Node root = YAML::Load(owned);
        VmConfig config;
        if (!root.IsNull()) read_top(config, root);
        if (auto check = finish_config(config, options.require_kernel); !check) raise(check.error());
        if (options.check_files) {
            if (auto check = check_config_files(config); !check) raise(check.error());
        }
        return config;
    }

    // "<file>:<line>:<column>: <key>: <message>"; yaml-cpp counts from 0, editors from 1.
    std::string located(const YAML::Mark& mark, std::string_view key, std::string_view message) const {
        std::string text(file_);
        text += ":" + std::to_string(mark.line < 0 ? 1 : mark.line + 1);
        text += ":" + std::to_string(mark.column < 0 ? 1 : mark.column + 1) + ": ";
        if (!key.empty()) {
            text += key;
            text += ": ";
        }
        text += message;
        return text;
    }

    [[noreturn]] void error(const YAML::Mark& mark, std::string_view key, std::string_view message) const {
        throw ConfigError{located(mark, key, message)};
    }

private:
    // Records where each document starts; nothing else.
    struct DocumentStarts final : YAML::EventHandler {
        std::vector<YAML::Mark> marks;
        void OnDocumentStart(const YAML::Mark& mark) override { marks.push_back(mark); }
        void OnDocumentEnd() override {}
        void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
        void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
        void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
        void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
        void OnSequenceEnd() override {}
        void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
        void OnMapEnd() override {}
    };

    // A config is one document. Walking the documents ourselves (instead of YAML::LoadAll) also guards
    // against a yaml-cpp 0.7 bug: a stray ',' at document level (",x" or "\"a\",") is never consumed, so
    // LoadAll produces empty documents forever. A document that starts where the previous one did is that
    // bug; at most three documents are read, so this always ends.
    void check_single_document(const std::string& text) const {
        std::istringstream in(text);
        YAML::Parser parser(in);
        DocumentStarts starts;
        while (starts.marks.size() < 3 && parser.HandleNextDocument(starts)) {
            size_t n = starts.marks.size();
            if (n >= 2 && starts.marks[n - 1].pos == starts.marks[n - 2].pos) {
                error(starts.marks[n - 1], "", "malformed YAML: unexpected ',' outside a [list] or {map}");
            }
        }
        if (starts.marks.size() > 1) error(starts.marks[1], "", "more than one YAML document (remove the '---')");
    }

    // Cross-field issues name a key path; report them where that key (or its closest parent) was written.
    [[noreturn]] void raise(const ConfigIssue& issue) const {
        std::string key = issue.key;
        while (!key.empty() && !marks_.contains(key)) {
            size_t cut = key.find_last_of(".[");
            key.resize(cut == std::string::npos ? 0 : cut);
        }
        error(key.empty() ? YAML::Mark() : marks_.at(key), issue.key, issue.message);
    }

    // Calls fn(name, value) for each entry of a map, remembering where each key was written; rejects
    // non-scalar and repeated keys (yaml-cpp would silently keep both).
    template <class Fn>
    void for_each_entry(const YAML::Node& map, const std::string& prefix, Fn fn) {
        std::set<std::string> seen;
        for (const auto& entry : map) {
            const YAML::Node& key = entry.first;
            if (!key.IsScalar()) error(key.Mark(), prefix, "keys must be plain names, got " + describe(key));
            std::string path = prefix.empty() ? key.Scalar() : prefix + "." + key.Scalar();
            if (!seen.insert(key.Scalar()).second) error(key.Mark(), path, "given twice");
            marks_[path] = key.Mark();
            fn(key.Scalar(), path, entry.second);
        }
    }

    // Unknown keys are reported at the key (the setters would blame the value).
    void check_known(const std::string& name, const std::string& key, std::span<const std::string_view> known) const {
        if (std::find(known.begin(), known.end(), name) == known.end()) {
            error(marks_.at(key), key, unknown_name_message("key", name, known));
        }
    }

    const std::string& scalar(const YAML::Node& node, const std::string& key) const {
        if (!node.IsScalar()) error(node.Mark(), key, "expected a value, got " + describe(node));
        return node.Scalar();
    }

    void expect_map(const YAML::Node& node, const std::string& key, std::string_view what) const {
        if (!node.IsMap()) error(node.Mark(), key, std::string("expected ") + std::string(what) + ", got " + describe(node));
    }

    // stdio | off | file:PATH | {file: PATH}
    std::string output_text(const YAML::Node& node, const std::string& key) {
        if (!node.IsMap()) return scalar(node, key);
        std::string text;
        for_each_entry(node, key, [&](const std::string& name, const std::string& path, const YAML::Node& value) {
            if (name != "file") error(value.Mark(), path, "unknown key (an output is stdio, off or {file: PATH})");
            text = "file:" + scalar(value, path);
        });
        if (text.empty()) error(node.Mark(), key, "expected {file: PATH}, got an empty map");
        return text;
    }

    void set(VmConfig& config, const std::string& key, const YAML::Node& value, const std::string& text) {
        if (auto ok = set_vm_field(config, key, text, context_); !ok) error(value.Mark(), key, ok.error().message);
    }

    void read_top(VmConfig& config, const YAML::Node& root) {
        expect_map(root, "", "a map of settings at the top level");
        for_each_entry(root, "", [&](const std::string& name, const std::string& key, const YAML::Node& value) {
            check_known(name, key, vm_keys());
            if (name == "memory" && value.IsMap()) {
                for_each_entry(value, key, [&](const std::string& sub_name, const std::string& sub, const YAML::Node& v) {
                    check_known(sub_name, sub, memory_keys());
                    set(config, sub, v, scalar(v, sub));
                });
            } else if (name == "serial") {
                set(config, key, value, output_text(value, key));
            } else if (name == "devices") {
                read_devices(config, value);
            } else {
                set(config, key, value, scalar(value, key));
            }
        });
    }

    void read_devices(VmConfig& config, const YAML::Node& list) {
        if (list.IsNull()) return;
        if (!list.IsSequence()) error(list.Mark(), "devices", "expected a list of devices, got " + describe(list));
        for (const YAML::Node& entry : list) read_device(config, entry);
    }

    // An entry is `- kind: {key: value, ...}`, `- kind: VALUE` (the kind's first key), or `- kind`.
    void read_device(VmConfig& config, const YAML::Node& entry) {
        std::string key = "devices[" + std::to_string(config.devices.size()) + "]";
        marks_[key] = entry.Mark();
        if (entry.IsScalar()) {
            config.devices.push_back(device(entry.Scalar(), entry.Mark(), key));
            return;
        }
        expect_map(entry, key, "a device such as '- block: {path: disk.img}'");
        if (entry.size() != 1) error(entry.Mark(), key, "a device entry names exactly one device type, got " + std::to_string(entry.size()));
        for_each_entry(entry, key, [&](const std::string& kind, const std::string& path, const YAML::Node& value) {
            DeviceConfig dev = device(kind, marks_[path], path);
            if (value.IsMap()) {
                for_each_entry(value, path, [&](const std::string& name, const std::string& sub, const YAML::Node& v) {
                    if (device_keys(dev).empty()) error(marks_.at(sub), sub, "unknown key (" + kind + " has no settings)");
                    check_known(name, sub, device_keys(dev));
                    read_device_field(dev, name, sub, v);
                });
            } else if (value.IsScalar()) {
                if (device_keys(dev).empty()) error(value.Mark(), path, kind + " has no settings; write '- " + kind + "'");
                read_device_field(dev, std::string(device_keys(dev)[0]), path, value);
            } else if (!value.IsNull()) {
                error(value.Mark(), path, "expected a map of settings, got " + describe(value));
            }
            config.devices.push_back(std::move(dev));
        });
    }

    DeviceConfig device(const std::string& kind, const YAML::Mark& where, const std::string& key) const {
        auto dev = make_device(kind);
        if (!dev) error(where, key, dev.error().message);
        return std::move(*dev);
    }

    void read_device_field(DeviceConfig& dev, const std::string& name, const std::string& key, const YAML::Node& value) {
        auto apply = [&](const YAML::Node& node, const std::string& text) {
            if (auto ok = set_device_field(dev, name, text, context_); !ok) error(node.Mark(), key, ok.error().message);
        };
        if (name == "shm" && value.IsSequence()) {
            for (const YAML::Node& item : value) apply(item, scalar(item, key));
        } else if (name == "output") {
            apply(value, output_text(value, key));
        } else {
            apply(value, scalar(value, key));
        }
    }

    std::string_view file_;
    FieldContext context_;
    std::map<std::string, YAML::Mark> marks_;
};

}  // namespace

Result<VmConfig> parse_config(std::string_view yaml_text, std::string_view file_name, const std::string& base_dir,
                              const ParseOptions& options) {
    Reader reader(file_name, base_dir);
    try {
        return reader.read(yaml_text, options);
    } catch (const ConfigError& e) {
        return fail(printable(e.message));
    } catch (const YAML::Exception& e) {
        // ParserException and DeepRecursion: the text is not YAML. e.msg lacks yaml-cpp's position prefix.
        return fail(printable(reader.located(e.mark, "", "malformed YAML: " + e.msg)));
    }
}

Result<VmConfig> load_config_file(const std::string& path, const ParseOptions& options) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::unexpected(errno_error(path));
    std::string text(kMaxFileBytes + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    if (in.bad()) return std::unexpected(errno_error(path));
    text.resize(static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxFileBytes) return fail(path + ": larger than 1M; not a config file?");
    size_t slash = path.find_last_of('/');
    std::string base_dir = slash == std::string::npos ? "" : path.substr(0, slash == 0 ? 1 : slash);
    return parse_config(text, path, base_dir, options);
}

}  // namespace kite
