// sandbox-key-holder: keeps KVM's static keys switched on for the life of the nested sandbox.
//
// KVM flips kernel static keys when the first VM or vCPU of a kind appears or the last goes away
// (preempt_notifier_key per VM; kvm_has_noapic_vcpu for a vCPU without an in-kernel irqchip, as in
// Kite's mirror helper VM; apic_sw_disabled and apic_hw_disabled for local APICs). Each flip patches
// running kernel code through int3. Under QEMU's multi-threaded TCG that patching wedged the sandbox's
// kernel: both vCPUs looped in asm_exc_int3 at a __schedule site with time frozen (see scripts/sandbox.sh).
// Holding one VM and vCPU of each kind keeps every count above zero, so the tests' VMs never patch code.
//
// Built and started by scripts/sandbox.sh inside the sandbox; prints "holding" and sleeps until killed.
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define MSR_IA32_APICBASE 0x1b
#define APIC_DEFAULT_BASE 0xfee00000ull

static int must(int result, const char *what) {
    if (result < 0) {
        perror(what);
        exit(1);
    }
    return result;
}

int main(void) {
    int kvm = must(open("/dev/kvm", O_RDWR | O_CLOEXEC), "open /dev/kvm");

    // A VM with an in-kernel irqchip: preempt_notifier_key; its vCPU 0's APIC stays software-disabled
    // (apic_sw_disabled); vCPU 1's APIC is hardware-disabled through its base MSR (apic_hw_disabled).
    int vm = must(ioctl(kvm, KVM_CREATE_VM, 0), "KVM_CREATE_VM");
    must(ioctl(vm, KVM_CREATE_IRQCHIP, 0), "KVM_CREATE_IRQCHIP");
    must(ioctl(vm, KVM_CREATE_VCPU, 0), "KVM_CREATE_VCPU 0");
    int vcpu1 = must(ioctl(vm, KVM_CREATE_VCPU, 1), "KVM_CREATE_VCPU 1");
    struct {
        struct kvm_msrs header;
        struct kvm_msr_entry entry;
    } msrs;
    memset(&msrs, 0, sizeof msrs);
    msrs.header.nmsrs = 1;
    msrs.entry.index = MSR_IA32_APICBASE;
    msrs.entry.data = APIC_DEFAULT_BASE; // without MSR_IA32_APICBASE_ENABLE
    if (ioctl(vcpu1, KVM_SET_MSRS, &msrs) != 1) {
        perror("KVM_SET_MSRS IA32_APICBASE");
        return 1;
    }

    // A VM without an irqchip and one vCPU: kvm_has_noapic_vcpu.
    int vm_noapic = must(ioctl(kvm, KVM_CREATE_VM, 0), "KVM_CREATE_VM (no irqchip)");
    must(ioctl(vm_noapic, KVM_CREATE_VCPU, 0), "KVM_CREATE_VCPU (no irqchip)");

    printf("sandbox-key-holder: holding\n");
    fflush(stdout);
    for (;;) pause();
}
