// The config file format as users read it (kite --help, kite run --help). Keep in step with
// vmm/config/fields.cpp, which holds the rules.
#include "vmm/config/yaml.h"

namespace kite {

std::string_view config_reference() {
    return R"(Config file (YAML). Relative paths are relative to the file's folder.
  vcpus: 2                   1 to 254 (default 1)
  memory: 512M               size, or {size: 1G, hugepages: auto|none|transparent|hugetlbfs}
                             (default 512M, hugepages auto. auto and transparent ask for transparent huge
                             pages, which for Kite's shared-memory RAM needs the host's
                             /sys/kernel/mm/transparent_hugepage/shmem_enabled set to advise (Debian's
                             default is never); transparent fails when the kernel has none, auto then
                             uses 4 KiB pages; hugetlbfs needs a multiple of 2M.
                             Guest RAM is always a shared memfd: vhost-user back-ends map it)
  kernel: vmlinuz            bzImage or PVH ELF; required unless restore is set
  initrd: initrd.gz          optional
  cmdline: "console=ttyS0"   kernel command line
  boot-protocol: auto        auto | bzimage | pvh
  virtio-discovery: acpi     acpi: virtio-mmio devices in the ACPI DSDT (LNRO0005); cmdline:
                             virtio_mmio.device= on the kernel command line instead
  serial: stdio              stdio | off | {file: serial.log}   (also file:serial.log)
  log-level: warn            trace | debug | info | warn | error | critical | off
  vhost-trace: false         print every vhost-user message, decoded
  seccomp: on                on | log | off. on: before the guest runs, Kite filters its own system calls
                             to what a running VMM needs (no exec, ptrace, mounts, modules, BPF, ...);
                             log: the kernel only logs calls outside the list; off: no filter
  api-socket: kite.sock      JSON control API socket (default none)
  restore: vm.snap           resume this snapshot instead of booting
  devices:                   in order; each entry names one device type
    - block: {path: disk.img, readonly: false, id: disk0, engine: auto}
                             engine: auto | io_uring | sync; id at most 20 bytes
    - net: {tap: tap0, mac: "52:54:00:12:34:56"}     tap at most 15 bytes; mac optional, unicast
    - rng                    (or rng: {})
    - console: {output: stdio}                      stdio | off | {file: console.log}
    - vhost-user-blk: {socket: /tmp/vub.sock}
    - vhost-user-fs: {socket: /tmp/vfs.sock, tag: hostfs, dax: 1G, queue-size: 1024}
                             tag 1 to 36 bytes; dax a multiple of 2M, 0 = no DAX window
    - vhost-user: {socket: /tmp/x.sock, virtio-id: 26, queues: 2, queue-size: 256, shm: [64M]}
                             any VIRTIO device type; shm lists shared memory regions (multiples
                             of 4K), omitted = ask the back-end (GET_SHMEM_CONFIG); config-size:
                             bytes of config space to read (default 256, 0 = none)
    Every vhost-user device also takes reconnect-timeout-ms (default 5000) and transport: mmio
                             (default) or pci (virtio-pci with MSI-X; not with shared memory regions).
    Shorthand: '- block: disk.img', '- net: tap0', '- vhost-user-blk: /tmp/vub.sock'.
Sizes: bytes, or a number with K, M, G or T (powers of 1024; 4KiB works too): 4096, 64K, 512M, 1G.
)";
}

}  // namespace kite
