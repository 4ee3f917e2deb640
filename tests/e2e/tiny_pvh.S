/* tiny_pvh.S: the smallest PVH guest, for measuring VMM start-up. Its first instruction already talks
 * to the host: it prints '!' on the serial port, then writes 0 to the debug-exit port 0x501. Built with
 * -DTINY_PVH_STAY it halts after the '!' instead, so the VM stays up (a peer for host-side benches). */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4               /* name size: "Xen\0" */
	.long 4               /* descriptor size: a 32-bit entry address */
	.long 18              /* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.balign 4
	.long _start

	.text
	.code32
	.globl _start
_start:
	movb $'!', %al
	movw $0x3f8, %dx
	outb %al, %dx
#ifndef TINY_PVH_STAY
	xorb %al, %al
	movw $0x501, %dx
	outb %al, %dx
#endif
1:	hlt
	jmp 1b
