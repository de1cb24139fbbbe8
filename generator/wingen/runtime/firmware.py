"""A tiny x86 "BIOS" generated here: prints to COM1 in real mode, optionally spins, halts.

Used by the acceleration probe (does KVM really run a guest?) and by the tests and bench as
the smallest real guest: its RAM holds exactly what was loaded into it.  With end="count"
it keeps incrementing the 32-bit counter at guest address COUNTER, so a test can see a
revived guest run and write its RAM.
"""

from __future__ import annotations

from pathlib import Path

BIOS_SIZE = 64 << 10
COUNTER = 0x7000


def _print(text: str) -> bytes:
    out = b""
    for ch in text.encode():
        out += bytes([0xB0, ch, 0xEE])  # mov al, ch; out dx, al
    return out


def bios_image(before: str, after: str = "", spin: int = 0, end: str = "halt") -> bytes:
    """64 KiB image: print `before`, count `spin` down in ECX, print `after`, then `end`:

    "halt" forever; "count": increment the dword at COUNTER forever; "reset": ask the
    chipset for a reset (port 0xcf9), which ends QEMU with exit code 0 under -no-reboot;
    "debug-exit": write 1 to port 0xf4 (QEMU exits with 3 given -device isa-debug-exit);
    "echo": copy every byte that arrives on COM2 to COM1, forever (a VM's signal port).
    """
    code = bytearray(b"\x31\xc0\x8e\xd8")  # xor ax, ax; mov ds, ax
    code += b"\xba\xf8\x03"  # mov dx, 0x3f8 (COM1 data port)
    code += _print(before)
    if spin:
        code += b"\x66\xb9" + spin.to_bytes(4, "little")  # mov ecx, spin
        code += b"\x66\x49\x75\xfc"  # dec ecx; jnz back to dec
    code += _print(after)
    if end == "reset":
        code += b"\xba\xf9\x0c\xb0\x06\xee"  # mov dx, 0xcf9; mov al, 6; out dx, al
    elif end == "debug-exit":
        code += b"\xb0\x01\xe6\xf4"  # mov al, 1; out 0xf4, al
    if end == "echo":
        code += b"\xba\xfd\x02\xec\xa8\x01\x74\xf8"  # mov dx, COM2 LSR; in; test al, 1; jz back
        code += b"\xba\xf8\x02\xec"  # mov dx, 0x2f8 (COM2 data port); in al, dx
        code += b"\xba\xf8\x03\xee\xeb\xee"  # mov dx, 0x3f8; out dx, al; jmp back to the poll
    elif end == "count":
        code += b"\x66\xff\x06" + COUNTER.to_bytes(2, "little")  # inc dword [COUNTER]
        code += b"\xf3\x90\xeb\xf7"  # pause; jmp back to inc (9 bytes up)
    else:
        code += b"\xfa\xf4\xeb\xfd"  # cli; hlt; jmp back to hlt
    image = bytearray(BIOS_SIZE)
    image[: len(code)] = code
    # Reset vector F000:FFF0 -> jmp far F000:0000 (the start of this 64 KiB segment).
    image[0xFFF0:0xFFF5] = b"\xea\x00\x00\x00\xf0"
    return bytes(image)


def write_bios(path: Path, before: str, after: str = "", spin: int = 0, end: str = "halt") -> Path:
    path.write_bytes(bios_image(before, after, spin, end))
    return path
