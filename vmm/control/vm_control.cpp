#include "vmm/control/vm_control.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>

#include "vmm/control/server.h"
#include "vmm/snapshot/key_file.h"
#include "vmm/snapshot/vm_snapshot.h"

namespace kite {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Snapshot state that outlives one request: the lazily created mirror VM and its transport key.
struct Snapshotter {
    Vm& vm;
    std::string refusal;  // non-empty: why this VM cannot be snapshotted
    std::unique_ptr<MirrorVm> mirror;
    std::optional<MirrorKey> key;
    std::function<void(std::string)> stop;  // stops the VM once the reply is out

    Result<SnapshotReport> take(const SnapshotRequest& request) {
        if (!refusal.empty()) return fail(refusal);
        if (request.via == SnapshotVia::Mirror && !key) {
            auto k = MirrorKey::random();
            if (!k) return std::unexpected(k.error());
            key = *k;
        }
        const bool was_paused = vm.paused();
        AfterSnapshot then = request.then;
        if (then == AfterSnapshot::Previous) then = was_paused ? AfterSnapshot::Pause : AfterSnapshot::Resume;
        SnapshotReport report;
        auto paused_at = Clock::now();
        vm.pause();
        // Direct snapshots are written straight from guest RAM (no second copy of it), so the guest waits
        // for the write. Through the mirror, memory leaves as sealed records Kite holds, and a guest that
        // goes on running resumes before they are written.
        auto data = capture(request, report);
        const bool resume_early = data && then == AfterSnapshot::Resume && request.via == SnapshotVia::Mirror;
        if (resume_early) {
            vm.resume();
            if (!was_paused) report.pause_ms = ms_since(paused_at);
        }
        auto written = data ? write(request, *data, report) : Result<void>(std::unexpected(data.error()));
        if (!written) {
            // A failed snapshot leaves the VM as it was.
            if (was_paused)
                vm.pause();
            else
                vm.resume();
            return std::unexpected(written.error());
        }
        if (!resume_early && !was_paused) report.pause_ms = ms_since(paused_at);
        if (then == AfterSnapshot::Resume && !resume_early) vm.resume();
        if (then == AfterSnapshot::Stop) stop("stopped after a snapshot to " + request.path);
        spdlog::info("snapshot {}: {} MiB, capture {:.1f} ms, write {:.1f} ms, vCPUs paused {:.1f} ms",
                     request.path, report.memory_bytes >> 20, report.capture_ms, report.write_ms, report.pause_ms);
        return report;
    }

    Result<SnapshotData> capture(const SnapshotRequest& request, SnapshotReport& report) {
        auto start = Clock::now();
        MemoryVia via = request.via == SnapshotVia::Mirror ? MemoryVia::Mirror : MemoryVia::Direct;
        auto data = capture_snapshot(vm, via, mirror, key ? *key : MirrorKey{});
        if (!data) return fail("snapshot: " + data.error().message);
        report.capture_ms = ms_since(start);
        report.memory_bytes = vm.ram().ram_size();
        return data;
    }

    Result<void> write(const SnapshotRequest& request, const SnapshotData& data, SnapshotReport& report) {
        auto start = Clock::now();
        if (data.flags & kSnapshotFlagSealedMemory)
            if (auto r = write_key_file(key_file_path(request.path), *key); !r) return r;
        if (auto r = write_snapshot(request.path, data); !r) return fail("snapshot: " + r.error().message);
        report.write_ms = ms_since(start);
        std::error_code ec;
        report.file_bytes = std::filesystem::file_size(request.path, ec);
        return {};
    }
};

}  // namespace

Result<void> attach_control(Vm& vm, const VmConfig& config) {
    if (config.control_socket.empty()) return {};
    // The server exists only after the handlers: they reach it through this slot.
    auto server_slot = std::make_shared<std::weak_ptr<ControlServer>>();
    auto stop_after_reply = [&vm, server_slot](std::string why) {
        auto server = server_slot->lock();
        if (!server) return vm.request_stop({0, std::move(why)});
        server->after_reply([&vm, why = std::move(why)] { vm.request_stop({0, why}); });
    };
    auto snap = std::make_shared<Snapshotter>(Snapshotter{vm, {}, {}, {}, stop_after_reply});
    snap->refusal = snapshot_refusal(config);
    vm.keep(snap);

    ControlHandlers h;
    h.pause = [&vm]() -> Result<void> {
        if (vm.paused()) return fail("the VM is already paused");
        vm.pause();
        return {};
    };
    h.resume = [&vm]() -> Result<void> {
        if (!vm.paused()) return fail("the VM is not paused");
        vm.resume();
        return {};
    };
    h.snapshot = [snap](const SnapshotRequest& r) { return snap->take(r); };
    h.shutdown = [stop_after_reply] { stop_after_reply("shut down through the control API"); };
    h.state = [&vm] { return std::string(vm.paused() ? "paused" : "running"); };
    h.vcpus = config.vcpus;
    h.memory = config.memory.size;
    auto server = ControlServer::listen(vm.io(), config.control_socket, std::move(h));
    if (!server) return std::unexpected(server.error());
    *server_slot = *server;
    vm.keep(*server);
    return {};
}

}  // namespace kite
