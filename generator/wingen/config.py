"""The config file's typed model: frozen, closed (unknown fields are errors), validated whole."""

from __future__ import annotations

import datetime
import ipaddress
import re
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .editions import Edition, find_edition
from .runtime.spec import SCALAR
from .timezones import check_windows_id, check_xp_time_zone
from .winpolicy import complexity_problem


def bad(problem: str, fix: str) -> PydanticCustomError:
    """A validation error that carries its fix; loader.py turns it into one line."""
    return PydanticCustomError("wingen", "{problem}", {"problem": problem, "fix": fix})


def _at(field: str, problem: str, fix: str) -> PydanticCustomError:
    """An error on a sibling field raised from a model validator (loader.py reads `at`)."""
    return PydanticCustomError("wingen", "{problem}", {"problem": problem, "fix": fix, "at": field})


class Model(BaseModel):
    # strict: a TOML string is not a number ("4096"), nor a number a boolean.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, str_strip_whitespace=False)


# --- small validated types -------------------------------------------------------------------
# Every pattern is matched whole (fullmatch): with re.match, `$` also matches before a trailing
# newline, and "W269N-…-T83GX\n" would pass as a product key.

_KEY_ALPHABET = "BCDFGHJKMNPQRTVWXY2346789"
_KEY = re.compile(rf"[{_KEY_ALPHABET}]{{5}}(-[{_KEY_ALPHABET}]{{5}}){{4}}")
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
# What Nix accepts as a store (derivation) name.
STORE_NAME = re.compile(r"[A-Za-z0-9+_?=-][A-Za-z0-9+._?=-]{0,199}")
# A Cygwin mirror as `cygwin lock` writes it into the lock (each tarball's URL begins with it).
MIRROR_URL = re.compile(r"(https?|ftp|file)://[^\s\"'\\]+")


def _matching(pattern: str, problem: str, fix: str) -> AfterValidator:
    """A check that the whole value matches `pattern`; else "'VALUE' <problem> (<fix>)"."""
    rx = re.compile(pattern)

    def check(v: str) -> str:
        if rx.fullmatch(v):
            return v
        raise bad(f"{v!r} {problem}", fix)

    return AfterValidator(check)


def _mac(v: str) -> str:
    mac = v.lower()
    if not _MAC.fullmatch(mac):
        raise bad(f"{v!r} is not a MAC address", "write six hex pairs like 52:54:00:12:01:01")
    if int(mac[:2], 16) & 1:
        raise bad(f"{v!r} is a multicast MAC", "make the first octet even, e.g. 52:54:00:…")
    if mac == "00:00:00:00:00:00":
        raise bad(f"{v!r} is the all-zero MAC", "use a locally administered one like 52:54:00:…")
    return mac


def _ipv4(v: str) -> str:
    try:
        return str(ipaddress.IPv4Address(v))
    except ValueError:
        raise bad(
            f"{v!r} is not an IPv4 address", "write four dotted numbers like 192.168.0.1"
        ) from None


def _subnet(v: str) -> str:
    try:
        net = ipaddress.IPv4Network(v, strict=True)
    except ValueError:
        raise bad(
            f"{v!r} is not an IPv4 network", "write it as address/prefix like 192.168.0.0/24"
        ) from None
    if net.prefixlen > 29:
        raise bad(f"{v!r} is too small for two hosts", "use a prefix of /29 or shorter")
    return str(net)


def _product_key(v: str) -> str:
    if v in ("none", "generic"):
        return v
    if _KEY.fullmatch(v.upper()):
        return v.upper()
    raise bad(
        f"{v!r} is not a product key",
        f'use "none", "generic", or five groups of five from {_KEY_ALPHABET} joined by "-"',
    )


# Control characters, line breaks and tabs included, and non-characters have no place in a
# config value: every field is one line, and XML (the answer file) cannot carry some of them.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
_CHARACTER_NAMES = {"\n": "a line break", "\r": "a carriage return", "\t": "a tab"}


def _printable(v: str) -> str:
    found = _UNPRINTABLE.search(v)
    if found:
        char = found.group()
        name = _CHARACTER_NAMES.get(char, f"the control character {char!r}")
        raise bad(f"{v!r} holds {name}", "remove it: every value is one line of text")
    return v


Sha256 = Annotated[
    str,
    _matching(
        "[0-9a-fA-F]{64}|[0-9abcdfghijklmnpqrsvwxyz]{52}",
        "is not a sha256 hash",
        "give 64 hex digits or Nix's 52-character base32 form; `wingen prefetch FILE` prints it",
    ),
]
Mac = Annotated[str, AfterValidator(_mac)]
IPv4 = Annotated[str, AfterValidator(_ipv4)]
Text = Annotated[str, AfterValidator(_printable)]
DrvName = Annotated[
    str,
    _matching(
        STORE_NAME.pattern,
        "cannot be a Nix derivation name",
        "use letters, digits and + - . _ ? =",
    ),
]
Seconds = Annotated[int, Field(ge=1, le=7 * 24 * 3600)]


# --- sections ------------------------------------------------------------------------------


class Media(Model):
    """A file the user supplies (Windows ISO, virtio-win ISO), pinned by hash."""

    name: DrvName | None = None
    url: Text | None = None
    sha256: Sha256

    @model_validator(mode="after")
    def _name_or_url(self) -> Self:
        if (self.name is None) == (self.url is None):
            raise _at(
                "name",
                "give exactly one of name or url",
                "name a file you add to the store, or a URL",
            )
        if self.url is not None and not STORE_NAME.fullmatch(self.store_name):
            raise _at(
                "url",
                f"{self.url!r} does not end in a file name Nix can store",
                'give name = "FILE.iso" and add the file to the store yourself',
            )
        return self

    @property
    def store_name(self) -> str:
        """The store name Nix gives the file: its own name, or the URL's last part."""
        if self.name is not None:
            return self.name
        assert self.url is not None
        return self.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


# The config fields that name a Media file (what `wingen prefetch --write --field` may set).
MEDIA_FIELDS = {
    "windows.iso": "the Windows install ISO",
    "windows.virtio_iso": "the virtio-win driver ISO",
    "cygwin.setup": "the Cygwin installer",
}


# Windows logon names: 1-20 characters, none of these, and not only dots and spaces (Microsoft
# Learn, "Naming conventions in Active Directory": logon names; Local Users and Groups refuses a
# name that "consists solely of periods (.) or spaces").
_USER_FORBIDDEN = '"/\\[]:;|=,+*?<>@'


def _user_name(v: str) -> str:
    fix = f"use 1-20 characters, none of {' '.join(_USER_FORBIDDEN)}, not only dots and spaces"
    found = [repr(c) for c in dict.fromkeys(v) if c in _USER_FORBIDDEN]
    if found:
        raise bad(
            f"{v!r} holds {', '.join(found)}, which Windows does not allow in a user name", fix
        )
    if not 1 <= len(v) <= 20:
        raise bad(f"{v!r} has {len(v)} characters, Windows allows 1 to 20", fix)
    if not v.strip(". "):
        raise bad(f"{v!r} is only dots and spaces", fix)
    return v


class Account(Model):
    user: Annotated[
        Text,
        AfterValidator(_user_name),
        WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 20}),
    ] = "wingen"
    password: Text = "wingen"  # noqa: S105 -- a throwaway VM account, stored in the answer file anyway


class Windows(Model):
    iso: Media
    answer_file: Literal["autounattend", "winnt-sif"] = "autounattend"
    edition: Text | None = None
    image_index: Annotated[int, Field(ge=1, le=64)] | None = None
    language: Annotated[
        str,
        _matching(
            r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*",
            "is not a language tag",
            "write it like en-US or de-DE",
        ),
    ] = "en-US"
    time_zone: Text = "UTC"
    firmware: Literal["bios", "uefi"] = "bios"
    architecture: Literal["x86_64", "i686"] = "x86_64"
    product_key: Annotated[str, AfterValidator(_product_key)] = "none"
    computer_name: Annotated[
        str,
        _matching(  # a NetBIOS name
            r"(?![0-9]+\Z)[A-Za-z0-9][A-Za-z0-9-]{0,14}",
            "is not a valid computer name",
            "use 1-15 letters, digits or '-', not all digits",
        ),
    ] = "wingen"
    account: Account = Account()
    virtio_iso: Media | None = None

    @model_validator(mode="after")
    def _edition_and_key(self) -> Self:
        if self.edition is None and self.image_index is None:
            raise _at(
                "edition",
                "no edition chosen",
                "set windows.edition (an image name) or windows.image_index",
            )
        if self.edition is not None and self.known_edition is None:
            raise _at(
                "edition",
                f"unknown edition {self.edition!r}",
                "use an install.wim image name such as 'Windows 11 Pro' or "
                "'Windows Server 2022 SERVERSTANDARD', or set windows.image_index instead",
            )
        edition = self.known_edition
        if edition is not None:
            want = "nt5" if self.answer_file == "winnt-sif" else "nt6"
            if edition.family != want:
                raise _at(
                    "answer_file",
                    f"edition {edition.name!r} cannot use answer_file {self.answer_file!r}",
                    'use "winnt-sif" for XP/2003 and "autounattend" for Vista and later',
                )
        if self.product_key == "generic" and (edition is None or edition.generic_key is None):
            raise _at(
                "product_key",
                f"no generic key is known for edition {self.edition or f'#{self.image_index}'!r}",
                'set windows.product_key to "none" or to your own key',
            )
        if self.firmware == "uefi" and self.answer_file == "winnt-sif":
            raise _at(
                "firmware",
                "XP/2003 cannot boot with UEFI firmware",
                'set windows.firmware = "bios"',
            )
        return self

    @model_validator(mode="after")
    def _nt5_setup(self) -> Self:
        """XP/2003 text-mode setup: it knows IDE disks only and stops at the key page."""
        if self.answer_file != "winnt-sif":
            return self
        if self.virtio_iso is not None:
            raise _at(
                "virtio_iso",
                "XP/2003 text-mode setup has no virtio disk driver and would find no disk",
                "remove windows.virtio_iso: XP/2003 install onto an IDE disk",
            )
        if self.product_key == "none":
            raise _at(
                "product_key",
                "XP/2003 setup stops at the product key page when winnt.sif has no key",
                "set windows.product_key to your own key (Microsoft publishes no generic one)",
            )
        return self

    @model_validator(mode="after")
    def _uefi_guest(self) -> Self:
        if self.firmware != "uefi":
            return self
        if self.architecture == "i686":
            raise _at(
                "firmware",
                "OVMF, the UEFI firmware, is x86_64-only: an i686 guest cannot boot with it",
                'set windows.firmware = "bios"',
            )
        edition = self.known_edition
        if edition is not None and not edition.uefi:
            raise _at(
                "firmware",
                f"{edition.name!r} boots from UEFI only with a CSM video BIOS, which OVMF lacks",
                'set windows.firmware = "bios"',
            )
        return self

    @property
    def old_for_cygwin(self) -> bool:
        """Current Cygwin does not run on this guest (32-bit, or older than 8.1 / 2012 R2)."""
        edition = self.known_edition
        return self.architecture == "i686" or (edition is not None and not edition.current_cygwin)

    @property
    def known_edition(self) -> Edition | None:
        return find_edition(self.edition) if self.edition is not None else None

    @property
    def key(self) -> str | None:
        """The key that goes into the answer file, or None."""
        if self.product_key == "none":
            return None
        if self.product_key == "generic":
            edition = self.known_edition
            assert edition is not None and edition.generic_key is not None
            return edition.generic_key
        return self.product_key

    @model_validator(mode="after")
    def _server_password(self) -> Self:
        """Server applies the complexity rule to local accounts: Setup would stop at the account."""
        edition = self.known_edition
        if edition is None or not edition.server or edition.family != "nt6":
            return self
        problem = complexity_problem(self.account.password, self.account.user)
        if problem is not None:
            raise _at(
                "account.password",
                f"{self.account.password!r} {problem}: Windows Server's password policy refuses it",
                "set windows.account.password to 6 or more characters with three of upper case, "
                "lower case, digits and symbols, not containing the user name",
            )
        return self

    @model_validator(mode="after")
    def _time_zone(self) -> Self:
        """Windows takes only its own zone IDs, XP/2003 only a numeric index (timezones.py)."""
        if self.answer_file == "winnt-sif":
            wrong = check_xp_time_zone(self.time_zone)
        else:
            wrong = check_windows_id(self.time_zone)
        if wrong is not None:
            raise _at("time_zone", *wrong)
        return self


# Options wingen sets itself on every QEMU command line; extra args may not repeat them.
WINGEN_QEMU_OPTIONS = frozenset(
    {
        "m", "smp", "accel", "enable-kvm", "machine", "M", "cpu", "netdev", "nic", "net", "qmp",
        "qmp-pretty", "monitor", "mon", "serial", "display", "nographic", "incoming", "rtc", "boot",
        "no-reboot", "nodefaults", "pidfile", "kernel", "initrd", "append", "virtfs", "name",
    }
)  # fmt: skip
_STOPS_AT_ONCE = "makes QEMU print something and exit instead of running the guest"
_LEAVES_THE_FILES = "makes QEMU drop to another user or root directory, away from the stage's files"
# Options that would get past that list or break the runtime, which starts, watches, saves and
# revives QEMU (generator/wingen/runtime/); each with why.
QEMU_OPTIONS_THAT_BREAK = {
    "readconfig": "reads more options from a file, past this check",
    "set": "changes options wingen set itself",
    "S": "starts the guest paused: the stage would wait for it until its deadline",
    "preconfig": "stops QEMU before the machine exists, waiting for a command",
    "loadvm": "loads a saved state over the one wingen boots or revives",
    "snapshot": "throws away the disk writes the next stage builds on",
    "no-shutdown": "keeps QEMU running after the guest shuts down, which the install waits for",
    "action": "changes what a guest shutdown or reboot does, which the stages wait for",
    "daemonize": "detaches QEMU from the runtime that supervises it",
    "writeconfig": "writes a file outside the build (and current QEMU no longer has it)",
    "run-with": _LEAVES_THE_FILES,
    "runas": _LEAVES_THE_FILES,
    "chroot": _LEAVES_THE_FILES,
    "h": _STOPS_AT_ONCE,
    "help": _STOPS_AT_ONCE,
    "version": _STOPS_AT_ONCE,
    "dump-vmstate": _STOPS_AT_ONCE,
}


def _extra_args(args: list[str]) -> list[str]:
    for arg in args:
        if not arg.startswith("-"):
            continue
        opt = arg.lstrip("-").split("=", 1)[0]
        if opt in WINGEN_QEMU_OPTIONS:
            raise bad(
                f"{arg!r} clashes with an option wingen sets itself",
                "remove it; memory, CPUs, network, console and boot come from other fields",
            )
        if opt in QEMU_OPTIONS_THAT_BREAK:
            raise bad(f"{arg!r} {QEMU_OPTIONS_THAT_BREAK[opt]}", "remove it")
    return args


def _rtc_base(v: str) -> str:
    """QEMU's -rtc base: utc, localtime, or a date (time) that exists (QEMU's own parser takes
    2010-13-01 and starts the guest clock wherever mktime puts it)."""
    fix = 'use "utc", "localtime" or a real date like 2025-01-01 (or 2025-01-01T12:00:00)'
    if v in ("utc", "localtime"):
        return v
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2})?", v):
        raise bad(f"{v!r} is not an RTC base", fix)
    try:
        datetime.datetime.fromisoformat(v)
    except ValueError as exc:
        raise bad(f"{v!r} is not a real date ({exc})", fix) from None
    return v


class VM(Model):
    # A named CPU model keeps a snapshot portable between builders (-cpu host ties it to the
    # building machine's CPU). Nehalem-v1 is x86-64-v2 (SSE4.2, POPCNT: what Windows 11 24H2
    # needs); "host" trades that for speed.
    cpu_model: Annotated[
        str,
        _matching(
            SCALAR["cpu_model"].pattern, "is not a QEMU CPU model name", SCALAR["cpu_model"].fix
        ),
    ] = "Nehalem-v1"
    # Unset: QEMU's default machine (pc). A versioned one (pc-q35-9.2) keeps a snapshot's device
    # model the same on a newer QEMU.
    machine_type: (
        Annotated[
            str,
            _matching(
                SCALAR["machine_type"].pattern,
                "is not a QEMU machine type",
                SCALAR["machine_type"].fix,
            ),
        ]
        | None
    ) = None
    memory_mib: Annotated[int, Field(ge=128, le=1024 * 1024)] = 2048
    cpus: Annotated[int, Field(ge=1, le=256)] = 2
    disk_size_gib: Annotated[int, Field(ge=1, le=65536)] = 64  # Windows 11 needs 64
    acceleration: Literal["auto", "kvm", "tcg"] = "auto"
    extra_qemu_args: Annotated[list[Text], AfterValidator(_extra_args)] = []
    # A fixed clock keeps builds reproducible; a date after current media were signed, so that
    # no certificate looks not yet valid.
    rtc_base: Annotated[str, AfterValidator(_rtc_base)] = "2025-01-01"
    controller_memory_mib: Annotated[int, Field(ge=128, le=65536)] = 512


class Network(Model):
    subnet: Annotated[str, AfterValidator(_subnet)] = "192.168.0.0/24"
    guest_ip: IPv4 = "192.168.0.1"
    controller_ip: IPv4 = "192.168.0.2"
    guest_mac: Mac = "52:54:00:12:01:01"
    controller_mac: Mac = "52:54:00:12:01:02"

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        net = ipaddress.IPv4Network(self.subnet)
        for field in ("guest_ip", "controller_ip"):
            ip = ipaddress.IPv4Address(getattr(self, field))
            if ip not in net:
                raise _at(
                    field, f"{str(ip)!r} is outside subnet {self.subnet}", "pick an address in it"
                )
            if ip in (net.network_address, net.broadcast_address):
                raise _at(
                    field,
                    f"{str(ip)!r} is the network or broadcast address of {self.subnet}",
                    "pick a host address",
                )
        if self.guest_ip == self.controller_ip:
            raise _at(
                "controller_ip", f"{self.controller_ip!r} is also guest_ip", "give each VM its own"
            )
        if self.guest_mac == self.controller_mac:
            raise _at(
                "controller_mac",
                f"{self.controller_mac!r} is also guest_mac",
                "give each VM its own",
            )
        return self

    @property
    def prefix_length(self) -> int:
        return ipaddress.IPv4Network(self.subnet).prefixlen

    @property
    def netmask(self) -> str:
        return str(ipaddress.IPv4Network(self.subnet).netmask)


# Cygwin Time Machine snapshots (ctm.crouchingtigerhiddenfruitbat.org/pub/cygwin/circa/…), the
# mirrors cygwin.com/install.html names for Windows that current Cygwin no longer supports.
TIME_MACHINE = "/circa/"


def check_mirror(v: str) -> str:
    """A Cygwin mirror URL as the lock and setup.exe carry it (one rule for the config, `cygwin
    lock --mirror` and the lock file)."""
    if not MIRROR_URL.fullmatch(v):
        raise bad(
            f"{v!r} is not a mirror URL",
            "give https://HOST/PATH, e.g. https://mirrors.kernel.org/sourceware/cygwin",
        )
    return v


MirrorUrl = Annotated[Text, AfterValidator(check_mirror)]
CygwinPackage = Annotated[
    str,
    _matching(
        r"[A-Za-z0-9][A-Za-z0-9._+-]*",
        "is not a Cygwin package name",
        "use names as setup.ini lists them",
    ),
]


class Cygwin(Model):
    packages: list[CygwinPackage] = []
    mirror: MirrorUrl = "https://mirrors.kernel.org/sourceware/cygwin"
    lock_file: Annotated[Text, Field(min_length=1)] = "cygwin.lock.json"
    # The pinned Cygwin installer (setup-x86_64.exe, or setup-x86.exe for i686) put on the ISO;
    # e.g. { url = "https://cygwin.com/setup-x86_64.exe", sha256 = "…" } (`wingen prefetch`).
    setup: Media | None = None

    @property
    def all_packages(self) -> list[str]:
        """The requested packages; openssh always, since SSH is how wingen drives Windows."""
        return sorted({"openssh", *self.packages})


class Snapshot(Model):
    """How the base keeps the running guest (costs: snapshot_cost.py, `wingen check`).

    compressed: the RAM in use, through `compression`; every revive decompresses it.
    template: the guest RAM as a file (sparse where zero) beside the device state; every revive
    maps it privately, copy-on-write, in about the same time whatever the RAM size.
    """

    mode: Literal["compressed", "template"] = "compressed"
    compression: Literal["zstd", "gzip", "none"] = "zstd"

    @model_validator(mode="after")
    def _compression_needs_compressed_mode(self) -> Self:
        if self.mode == "template" and "compression" in self.model_fields_set:
            raise _at(
                "compression",
                f'{self.compression!r} has no effect with mode = "template"',
                'remove it (a template keeps the RAM uncompressed), or use mode = "compressed"',
            )
        return self

    @property
    def stored_as(self) -> str:
        """What the runtime saves and revives with: a compression, or "template"."""
        return "template" if self.mode == "template" else self.compression


class Deadlines(Model):
    """Seconds each wait may take before the stage fails with its reason (scaled up under TCG)."""

    install: Seconds = 4 * 3600
    boot: Seconds = 900
    ssh: Seconds = 600
    build: Seconds = 24 * 3600
    save: Seconds = 900  # stopping the guest and writing its memory state


class Config(Model):
    name: DrvName = "wingen"
    guest: Literal["windows", "linux"] = "windows"
    windows: Windows | None = None
    vm: VM = VM()
    network: Network = Network()
    cygwin: Cygwin = Cygwin()
    snapshot: Snapshot = Snapshot()
    deadlines: Deadlines = Deadlines()

    @model_validator(mode="after")
    def _guest_section(self) -> Self:
        if self.guest == "windows" and self.windows is None:
            raise _at(
                "windows",
                "a windows guest needs a [windows] section",
                "add one; `wingen init` writes an example",
            )
        if self.guest == "linux" and self.windows is not None:
            raise _at(
                "windows",
                "a linux guest takes no [windows] section",
                'remove it or set guest = "windows"',
            )
        return self

    @model_validator(mode="after")
    def _windows_11_hardware(self) -> Self:
        """Windows 11's minimums (Microsoft: 64 GB storage, 2 cores). The answer file bypasses
        setup's checks, but an install onto a smaller disk runs out of space."""
        edition = self.windows.known_edition if self.windows is not None else None
        if edition is None or not edition.windows11:
            return self
        if self.vm.disk_size_gib < 64:
            raise _at(
                "vm.disk_size_gib",
                f"{self.vm.disk_size_gib} GiB is below Windows 11's 64 GB minimum",
                "set vm.disk_size_gib = 64 or more",
            )
        if self.vm.cpus < 2:
            raise _at(
                "vm.cpus", f"{self.vm.cpus} CPU is below Windows 11's 2 cores", "set vm.cpus = 2"
            )
        return self

    @model_validator(mode="after")
    def _cygwin_runs_on_it(self) -> Self:
        """Old or 32-bit Windows runs only a Cygwin Time Machine snapshot (see editions.py)."""
        win = self.windows
        if win is None or not win.old_for_cygwin or TIME_MACHINE in self.cygwin.mirror:
            return self
        what = win.edition or f"image #{win.image_index}"
        raise _at(
            "cygwin.mirror",
            f"current Cygwin needs 64-bit Windows 8.1 / Server 2012 R2 or later, not "
            f"{what!r} ({win.architecture})",
            "set it to a Cygwin Time Machine snapshot (a URL with /circa/; cygwin.com/install.html "
            "names one per Windows version) and lock from its setup.ini, or pick a newer edition",
        )

    @property
    def ssh_user(self) -> str:
        return self.windows.account.user if self.windows is not None else "root"
