"""A tiny x86 "BIOS" generated here: prints to COM1 in real mode, optionally spins, halts.

Used by the acceleration probe (does KVM really run a guest?) and by the tests and bench as
the smallest real guest: its RAM holds exactly what was loaded into it.
"""

from __future__ import annotations

from pathlib import Path

BIOS_SIZE = 64 << 10


def bios_image(before: str, after: str = "", spin: int = 0) -> bytes:
    """64 KiB image: print `before`, count `spin` down in ECX, print `after`, cli; hlt forever."""
    code = bytearray(b"\xba\xf8\x03")  # mov dx, 0x3f8 (COM1 data port)
    for ch in before.encode():
        code += bytes([0xB0, ch, 0xEE])  # mov al, ch; out dx, al
    if spin:
        code += b"\x66\xb9" + spin.to_bytes(4, "little")  # mov ecx, spin
        code += b"\x66\x49\x75\xfc"  # dec ecx; jnz back to dec
    for ch in after.encode():
        code += bytes([0xB0, ch, 0xEE])
    code += b"\xfa\xf4\xeb\xfd"  # cli; hlt; jmp back to hlt
    image = bytearray(BIOS_SIZE)
    image[: len(code)] = code
    # Reset vector F000:FFF0 -> jmp far F000:0000 (the start of this 64 KiB segment).
    image[0xFFF0:0xFFF5] = b"\xea\x00\x00\x00\xf0"
    return bytes(image)


def write_bios(path: Path, before: str, after: str = "", spin: int = 0) -> Path:
    path.write_bytes(bios_image(before, after, spin))
    return path
