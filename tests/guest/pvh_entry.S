// PVH test guest entry. Kite (or any PVH loader) finds pvh_start through the Xen ELF note
// XEN_ELFNOTE_PHYS32_ENTRY and enters it in 32-bit protected mode, paging off, %ebx = hvm_start_info.
// The guest records its entry state, switches itself to long mode on static page tables (built by the
// assembler, so no ring-0 loop) and calls guest_main(1).

    .section .note.Xen, "a", @note
    .balign 4
    .long 4                 // namesz: "Xen\0"
    .long 4                 // descsz
    .long 18                // XEN_ELFNOTE_PHYS32_ENTRY
    .asciz "Xen"
    .long pvh_start

    .section .text.entry, "ax"
    .code32
    .globl pvh_start
pvh_start:
    mov %ebx, entry_info
    mov $stack_top, %esp    // the PVH ABI promises no stack
    mov %cr0, %eax
    mov %eax, entry_cr0
    pushfl
    popl entry_rflags
    mov %cs, %eax
    mov %eax, entry_cs

    lgdt gdt_desc
    mov %cr4, %eax
    or $0x20, %eax          // PAE
    mov %eax, %cr4
    mov $pml4, %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx   // EFER
    rdmsr
    or $0x100, %eax         // LME
    wrmsr
    mov %cr0, %eax
    or $0x80000000, %eax    // PG
    mov %eax, %cr0
    ljmp $0x08, $long_mode

    .code64
long_mode:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov $stack_top, %rsp
    mov $1, %edi
    call guest_main
1:  hlt
    jmp 1b

    .section .data
    .balign 8
gdt:
    .quad 0
    .quad 0x00af9a000000ffff    // 0x08: 64-bit code
    .quad 0x00cf92000000ffff    // 0x10: data
gdt_end:
gdt_desc:
    .word gdt_end - gdt - 1
    .long gdt

    // Identity map of the first 1 GiB with 2 MiB pages.
    .balign 4096
pml4:
    .quad pdpt + 3
    .fill 511, 8, 0
pdpt:
    .quad pd + 3
    .fill 511, 8, 0
pd:
    i = 0
    .rept 512
    .quad (i << 21) | 0x83
    i = i + 1
    .endr

    .section .bss
    .balign 16
    .skip 16384
stack_top:
