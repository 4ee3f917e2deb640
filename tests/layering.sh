#!/usr/bin/env bash
# layering.sh ROOT: fails when a source file includes a header from a room it must not depend on.
# The rooms and what each may include (its own files always) are the CMake libraries' link edges,
# written out once here; the check keeps "no include that runs back up" true as the code changes.
set -uo pipefail
cd "${1:-$(dirname "$0")/..}" || exit 2

# room: the rooms it may include from (transitively closed, so every allowed room is listed).
declare -A allowed=(
  [base]=""
  [memory]="base"
  [devices]="base memory"
  [devices/legacy]="base memory devices"
  [devices/pci]="base memory devices"
  [devices/virtio]="base memory devices devices/pci"
  [vhost]="base memory devices devices/pci devices/virtio"
  [vhost/backend]="base memory devices devices/pci devices/virtio vhost"
  [vmm/kvm]="base memory devices devices/legacy devices/pci devices/virtio"
  [vmm/config]="base"
  [vmm/mirror]="base memory devices devices/legacy devices/pci devices/virtio vmm/kvm"
  [vmm/arch/x86_64/boot]="base memory"
  [vmm/arch/x86_64/acpi]="base memory devices devices/legacy"
  [vmm/arch/x86_64]="base memory devices devices/legacy devices/pci devices/virtio vmm/kvm vmm/arch/x86_64/boot
                     vmm/arch/x86_64/acpi"
  [vmm]="base memory devices devices/legacy devices/pci devices/virtio vhost vmm/kvm vmm/config
         vmm/arch/x86_64 vmm/arch/x86_64/boot vmm/arch/x86_64/acpi"
  [vmm/snapshot]="base memory devices devices/legacy devices/pci devices/virtio vhost vmm/kvm vmm/config
                  vmm/mirror vmm/arch/x86_64 vmm/arch/x86_64/boot vmm/arch/x86_64/acpi vmm"
  [vmm/control]="base memory devices devices/legacy devices/pci devices/virtio vhost vmm/kvm vmm/config
                 vmm/mirror vmm/arch/x86_64 vmm/arch/x86_64/boot vmm/arch/x86_64/acpi vmm vmm/snapshot"
)
# main.cpp composes everything.
exempt="vmm/main.cpp"

bad=0
while IFS= read -r file; do
  [[ $file == "$exempt" ]] && continue
  room=$(dirname "$file")
  [[ -v allowed[$room] ]] || { echo "layering: $file is in $room, which is not a known room (add it to $0)"; bad=1; continue; }
  while IFS= read -r inc; do
    target=$(dirname "$inc")
    [[ $target == "$room" ]] && continue
    [[ " ${allowed[$room]//$'\n'/ } " == *" $target "* ]] && continue
    echo "layering: $file includes \"$inc\": $room must not depend on $target"
    bad=1
  done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$file" | grep -E '^(base|memory|devices|vhost|vmm)/')
done < <(git ls-files --cached --others --exclude-standard -- 'base/*' 'memory/*' 'devices/*' 'vhost/*' 'vmm/*' 2>/dev/null | grep -E '\.(h|cpp|c)$' |
         grep -v '^vmm/mirror/helper/')
if [[ $bad -eq 0 ]]; then echo "layering: every include runs down the layers"; fi
exit $bad
