/* hyperlab ticker: a multiboot (v1) kernel that counts seconds on COM1.
 *
 * The nested guests of chapter-2-linux's migration steps. Under software emulation inside
 * software emulation a Linux guest needs minutes to boot; this program is running within
 * milliseconds and idles on `hlt` between timer interrupts. Each interrupt still costs its
 * hypervisor host real work (QEMU's timer, emulated in turn): at 100 Hz three tickers kept SVR1's
 * one CPU busy, so the clock runs at 20 Hz, close to the PIT's slowest (18.2 Hz).
 * Its count lives in RAM only: a guest that moved while running keeps counting on the new
 * host, a guest that was restarted prints `hyperlab-ticker: start` and counts from 0 again.
 *
 * Built into src/hyperlab/images/ticker.py (KERNEL) by:
 *   as --32 -o ticker.o ticker.S && ld -m elf_i386 --oformat binary -Ttext 0 -e 0 -o ticker.bin ticker.o
 * tests/unit/test_ticker.py checks that KERNEL is this source, assembled.
 *
 * QEMU's multiboot loader enters at `start` in 32-bit protected mode, paging off, interrupts off;
 * the loader's GDT may be gone, so the program loads its own flat one before touching segments.
 *
 * Every line also goes to the VGA text screen (80x25 at 0xb8000, the mode the BIOS left), one row
 * per line, from the top again after the last: a screen that visibly changes every 5 s, which
 * the screenshot watchdog's tests need (hyperlab.host.screen). Guests without a VGA lose nothing.
 */
    .code32
    .set BASE, 0x100000
    .set HZ, 20
    .set EVERY, 5
    .text
header:
    .long 0x1BADB002
    .long 0x00010000
    .long -(0x1BADB002 + 0x00010000)
    .long BASE
    .long BASE
    .long 0
    .long 0
    .long BASE + (start - header)
start:
    cli
    cld
    lgdt BASE + (gdtr - header)
    ljmp $0x08, $BASE + (flat - header)
flat:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %ax, %fs
    mov %ax, %gs
    mov $BASE + 0x10000, %esp
    /* PIC: IRQ0-7 -> vectors 0x20-0x27, IRQ8-15 -> 0x28-0x2f; only IRQ0 unmasked */
    mov $0x11, %al
    out %al, $0x20
    out %al, $0xa0
    mov $0x20, %al
    out %al, $0x21
    mov $0x28, %al
    out %al, $0xa1
    mov $0x04, %al
    out %al, $0x21
    mov $0x02, %al
    out %al, $0xa1
    mov $0x01, %al
    out %al, $0x21
    out %al, $0xa1
    mov $0xfe, %al
    out %al, $0x21
    mov $0xff, %al
    out %al, $0xa1
    /* PIT channel 0, mode 3, HZ interrupts a second */
    mov $0x36, %al
    out %al, $0x43
    mov $(1193182 / HZ) & 0xff, %al
    out %al, $0x40
    mov $(1193182 / HZ) >> 8, %al
    out %al, $0x40
    /* IDT: 48 interrupt gates to `ignore`, then vector 0x20 to `timer` */
    mov $BASE + (idt - header), %edi
    mov $48, %ecx
1:  mov $BASE + (ignore - header), %eax
    mov %ax, (%edi)
    movw $0x08, 2(%edi)
    movw $0x8e00, 4(%edi)
    shr $16, %eax
    mov %ax, 6(%edi)
    add $8, %edi
    loop 1b
    mov $BASE + (timer - header), %eax
    mov $BASE + (idt - header) + 0x20 * 8, %edi
    mov %ax, (%edi)
    shr $16, %eax
    mov %ax, 6(%edi)
    lidt BASE + (idtr - header)
    mov $BASE + (hello - header), %esi
    call puts
    sti
wait:
    hlt
    mov BASE + (ticks - header), %eax
    cmp BASE + (next - header), %eax
    jb wait
    addl $HZ * EVERY, BASE + (next - header)
    xor %edx, %edx
    mov $HZ, %ecx
    div %ecx
    mov %eax, %ebx
    mov $BASE + (up - header), %esi
    call puts
    mov %ebx, %eax
    call putdec
    mov $BASE + (unit - header), %esi
    call puts
    jmp wait

/* print the NUL-terminated string at %esi */
puts:
    lodsb
    test %al, %al
    jz 2f
    call putc
    jmp puts
2:  ret

/* print %eax in decimal */
putdec:
    mov $10, %ecx
    xor %edi, %edi
3:  xor %edx, %edx
    div %ecx
    push %edx
    inc %edi
    test %eax, %eax
    jnz 3b
4:  pop %eax
    add $'0', %al
    call putc
    dec %edi
    jnz 4b
    ret

/* COM1: wait for an empty transmitter, then send %al; the screen gets it too */
putc:
    call vgac
    push %eax
    mov $0x3fd, %dx
5:  in %dx, %al
    test $0x20, %al
    jz 5b
    pop %eax
    mov $0x3f8, %dx
    out %al, %dx
    ret

/* %al on the VGA text screen: '\r' to column 0, '\n' to the next row (cleared first),
 * anything else at the cursor; all registers kept */
vgac:
    push %eax
    push %ebx
    push %ecx
    push %edi
    cmp $'\r', %al
    jne 6f
    movl $0, BASE + (col - header)
    jmp 9f
6:  cmp $'\n', %al
    jne 8f
    mov BASE + (row - header), %eax
    inc %eax
    cmp $25, %eax
    jb 7f
    xor %eax, %eax
7:  mov %eax, BASE + (row - header)
    imul $160, %eax, %edi
    add $0xb8000, %edi
    mov $80, %ecx
    mov $0x0720, %ax
    rep stosw
    jmp 9f
8:  mov BASE + (col - header), %ecx
    cmp $80, %ecx
    jae 9f
    mov BASE + (row - header), %ebx
    imul $80, %ebx, %ebx
    add %ecx, %ebx
    mov $0x07, %ah
    mov %ax, 0xb8000(,%ebx,2)
    incl BASE + (col - header)
9:  pop %edi
    pop %ecx
    pop %ebx
    pop %eax
    ret

timer:
    incl %cs:BASE + (ticks - header)
    push %eax
    mov $0x20, %al
    out %al, $0x20
    pop %eax
ignore:
    iret

    .balign 8
gdt:
    .quad 0
    .quad 0x00cf9a000000ffff
    .quad 0x00cf92000000ffff
gdtr:
    .word 3 * 8 - 1
    .long BASE + (gdt - header)
idtr:
    .word 48 * 8 - 1
    .long BASE + (idt - header)
ticks: .long 0
next:  .long HZ * EVERY
row:   .long 0
col:   .long 0
hello: .asciz "\r\nhyperlab-ticker: start\r\n"
up:    .asciz "hyperlab-ticker: up "
unit:  .asciz " s\r\n"
    .balign 8
idt:
    .fill 48 * 8, 1, 0
