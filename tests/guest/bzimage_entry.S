// bzImage test guest: a real-mode setup area that holds only the setup header (boot protocol 2.15,
// relocatable, pref_address 16 MiB, XLF_KERNEL_64), then the protected-mode part, linked at 16 MiB,
// whose 64-bit entry startup_64 sits at offset 0x200 as the 64-bit boot protocol requires.
// The loader enters startup_64 in long mode with %rsi = boot_params.

    .section .setup, "a"
    .org 0x1f1
    .byte 4                     // setup_sects: 4 + the boot sector = 0xa00 bytes of setup
    .word 0                     // root_flags
    .long _syssize              // syssize, 16-byte units (computed by the linker script)
    .word 0                     // ram_size
    .word 0xffff                // vid_mode
    .word 0                     // root_dev
    .word 0xaa55                // boot_flag
    .org 0x200
    .byte 0xeb, 0x6a            // jump over the header: it ends at 0x26c
    .ascii "HdrS"
    .word 0x020f                // version 2.15
    .long 0                     // realmode_swtch
    .word 0                     // start_sys_seg
    .word 0                     // kernel_version
    .byte 0                     // type_of_loader
    .byte 0x01                  // loadflags: LOADED_HIGH
    .word 0                     // setup_move_size
    .long 0x100000              // code32_start
    .long 0, 0                  // ramdisk_image, ramdisk_size
    .long 0                     // bootsect_kludge
    .word 0                     // heap_end_ptr
    .byte 0, 0                  // ext_loader_ver, ext_loader_type
    .long 0                     // cmd_line_ptr
    .org 0x22c
    .long 0x7fffffff            // initrd_addr_max
    .long 0x200000              // kernel_alignment
    .byte 1                     // relocatable_kernel, but linked at pref_address: Kite must load it there
    .byte 21                    // min_alignment
    .word 0x0001                // xloadflags: XLF_KERNEL_64
    .long 2047                  // cmdline_size
    .long 0                     // hardware_subarch
    .quad 0                     // hardware_subarch_data
    .long 0, 0                  // payload_offset, payload_length
    .quad 0                     // setup_data
    .org 0x258
    .quad 0x1000000             // pref_address
    .long _init_size            // init_size
    .long 0                     // handover_offset
    .long 0                     // kernel_info_offset
    .org 0xa00

    .section .head.text, "ax"
    .code64
    .fill 0x200, 1, 0xf4        // the 32-bit entry at offset 0 is not provided: hlt
    .globl startup_64
startup_64:
    lea stack_top(%rip), %rsp   // our own stack first: the protocol promises none
    pushfq                      // before cli, so the IF check sees the state Kite set
    popq entry_rflags(%rip)
    cli
    mov %rsi, entry_info(%rip)
    mov %cr0, %rax
    mov %rax, entry_cr0(%rip)
    mov $0xc0000080, %ecx       // EFER
    rdmsr
    mov %eax, entry_efer(%rip)
    mov %cs, %eax
    mov %rax, entry_cs(%rip)
    xor %edi, %edi
    call guest_main
1:  hlt
    jmp 1b

    .section .bss
    .balign 16
    .skip 16384
stack_top:
