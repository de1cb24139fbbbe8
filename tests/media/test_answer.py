"""Autounattend.xml and winnt.sif: rendered from configs, parsed back, checked structurally."""

from __future__ import annotations

import configparser
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from wingen import escape
from wingen.answer.schema import AnswerFileError, check_autounattend
from wingen.errors import UserError
from wingen.runtime.contract import failure_reason

from .helpers import OLD_CYGWIN, render_files, windows_cfg

NS = {"u": "urn:schemas-microsoft-com:unattend"}
WCM = "{http://schemas.microsoft.com/WMIConfig/2002/State}"
MARKUP = '</Value><x a="1">&amp;\'%d$`\\'  # would break XML, cmd, shell and INF if unescaped


def autounattend(windows: dict[str, Any] | None = None, **top: Any) -> ET.Element:
    text = render_files(windows_cfg(windows, **top))["windows/autounattend.xml"]
    assert text.startswith('<?xml version="1.0" encoding="utf-8"?>\n')
    return ET.fromstring(text)


def passes(root: ET.Element) -> list[str]:
    return [s.get("pass", "") for s in root.findall("u:settings", NS)]


def comp(root: ET.Element, pass_: str, name: str) -> ET.Element:
    found = root.find(f"u:settings[@pass='{pass_}']/u:component[@name='{name}']", NS)
    assert found is not None, (pass_, name)
    return found


def text(elem: ET.Element, path: str) -> str:
    found = elem.find(path, NS)
    assert found is not None, path
    return found.text or ""


def test_bios_layout_and_values() -> None:
    root = autounattend(
        {"product_key": "generic", "computer_name": "build-01",
         "time_zone": "W. Europe Standard Time", "language": "de-DE",
         "account": {"user": "bob", "password": "s3cret"}}
    )  # fmt: skip
    assert passes(root) == ["windowsPE", "specialize", "oobeSystem"]
    setup = comp(root, "windowsPE", "Microsoft-Windows-Setup")
    parts = setup.findall(".//u:CreatePartition", NS)
    assert [text(p, "u:Type") for p in parts] == ["Primary"]
    assert text(setup, ".//u:ModifyPartition/u:Active") == "true"
    assert text(setup, ".//u:ModifyPartition/u:Format") == "NTFS"
    assert text(setup, ".//u:InstallTo/u:PartitionID") == "1"
    assert text(setup, ".//u:MetaData/u:Key") == "/IMAGE/NAME"
    assert text(setup, ".//u:MetaData/u:Value") == "Windows 11 Pro"
    assert text(setup, ".//u:ProductKey/u:Key") == "W269N-WFGWX-YVC9B-4J6C9-T83GX"
    assert text(setup, "u:UserData/u:AcceptEula") == "true"
    pe_intl = comp(root, "windowsPE", "Microsoft-Windows-International-Core-WinPE")
    assert text(pe_intl, "u:SetupUILanguage/u:UILanguage") == "de-DE"
    shell = comp(root, "specialize", "Microsoft-Windows-Shell-Setup")
    assert text(shell, "u:ComputerName") == "build-01"
    assert text(shell, "u:TimeZone") == "W. Europe Standard Time"
    tcpip = comp(root, "specialize", "Microsoft-Windows-TCPIP")
    assert text(tcpip, ".//u:Identifier") == "52-54-00-12-01-01"
    assert text(tcpip, ".//u:IpAddress") == "192.168.0.1/24"
    oobe = comp(root, "oobeSystem", "Microsoft-Windows-Shell-Setup")
    assert text(oobe, ".//u:LocalAccount/u:Name") == "bob"
    assert text(oobe, ".//u:LocalAccount/u:Group") == "Administrators"
    assert text(oobe, ".//u:LocalAccount/u:Password/u:Value") == "s3cret"
    assert text(oobe, "u:AutoLogon/u:Username") == "bob"
    assert text(oobe, "u:AutoLogon/u:Enabled") == "true"
    assert text(oobe, "u:OOBE/u:HideEULAPage") == "true"
    assert text(oobe, "u:OOBE/u:HideOnlineAccountScreens") == "true"
    cmd = text(oobe, "u:FirstLogonCommands/u:SynchronousCommand/u:CommandLine")
    assert cmd.startswith('cmd.exe /c "for %d in (D E F')
    assert r"%d:\wingen\install.cmd" in cmd
    for component in root.iter("{urn:schemas-microsoft-com:unattend}component"):
        assert component.get("processorArchitecture") == "amd64"


def test_uefi_gpt_layout() -> None:
    root = autounattend({"firmware": "uefi"})
    setup = comp(root, "windowsPE", "Microsoft-Windows-Setup")
    parts = setup.findall(".//u:CreatePartition", NS)
    assert [text(p, "u:Type") for p in parts] == ["EFI", "MSR", "Primary"]
    mods = setup.findall(".//u:ModifyPartition", NS)
    assert [(text(m, "u:PartitionID"), text(m, "u:Format")) for m in mods] == [
        ("1", "FAT32"),
        ("3", "NTFS"),
    ]
    assert setup.find(".//u:Active", NS) is None
    assert text(setup, ".//u:InstallTo/u:PartitionID") == "3"


def test_image_index_no_key_i686() -> None:
    root = autounattend(
        {"edition": None, "image_index": 6, "product_key": "none", "architecture": "i686"},
        cygwin=OLD_CYGWIN,
    )
    setup = comp(root, "windowsPE", "Microsoft-Windows-Setup")
    assert text(setup, ".//u:MetaData/u:Key") == "/IMAGE/INDEX"
    assert text(setup, ".//u:MetaData/u:Value") == "6"
    assert setup.find(".//u:ProductKey", NS) is None
    archs = {c.get("processorArchitecture") for c in root.iter(f"{{{NS['u']}}}component")}
    assert archs == {"x86"}


def test_virtio_driver_paths_one_root_per_cd() -> None:
    root = autounattend({"virtio_iso": {"name": "virtio-win.iso", "sha256": "1" * 64}})
    assert passes(root) == ["windowsPE", "offlineServicing", "specialize", "oobeSystem"]
    pnp = comp(root, "windowsPE", "Microsoft-Windows-PnpCustomizationsWinPE")
    # BIOS: Windows, Cygwin and virtio CDs (the answer file is on the floppy): D:, E:, F:
    assert [p.text for p in pnp.findall(".//u:Path", NS)] == ["D:\\", "E:\\", "F:\\"]
    keys = [e.get(f"{WCM}keyValue") for e in pnp.findall(".//u:PathAndCredentials", NS)]
    assert keys == ["1", "2", "3"]
    later = comp(root, "offlineServicing", "Microsoft-Windows-PnpCustomizationsNonWinPE")
    assert [p.text for p in later.findall(".//u:Path", NS)] == ["D:\\", "E:\\", "F:\\"]
    uefi = autounattend(
        {"edition": "Windows Server 2022 SERVERSTANDARD", "firmware": "uefi",
         "virtio_iso": {"name": "v.iso", "sha256": "1" * 64}}
    )  # fmt: skip
    pnp = comp(uefi, "windowsPE", "Microsoft-Windows-PnpCustomizationsWinPE")
    assert [p.text for p in pnp.findall(".//u:Path", NS)] == ["D:\\", "E:\\", "F:\\", "G:\\"]


def test_interface_children_in_microsofts_order() -> None:
    iface = comp(autounattend(), "specialize", "Microsoft-Windows-TCPIP").find(
        "u:Interfaces/u:Interface", NS
    )
    assert iface is not None
    assert [e.tag.split("}")[1] for e in iface] == [
        "Ipv4Settings",
        "Identifier",
        "UnicastIpAddresses",
    ]


@pytest.mark.parametrize(
    ("edition", "server"),
    [("Windows Server 2022 SERVERSTANDARDCORE", True), ("Windows 10 Pro", False)],
)
def test_administrator_password(edition: str, server: bool) -> None:
    root = autounattend({"edition": edition, "account": {"user": "bob", "password": "Pw-one-1"}})
    oobe = comp(root, "oobeSystem", "Microsoft-Windows-Shell-Setup")
    assert text(oobe, "u:UserAccounts/u:AdministratorPassword/u:Value") == "Pw-one-1"
    assert text(oobe, "u:UserAccounts/u:AdministratorPassword/u:PlainText") == "true"


def test_windows_11_labconfig() -> None:
    setup = comp(autounattend(), "windowsPE", "Microsoft-Windows-Setup")
    paths = [p.text or "" for p in setup.findall(".//u:RunSynchronousCommand/u:Path", NS)]
    values = {p.split(" /v ")[1].split()[0] for p in paths if "LabConfig" in p}
    assert values == {"BypassTPMCheck", "BypassSecureBootCheck", "BypassRAMCheck",
                      "BypassStorageCheck", "BypassCPUCheck"}  # fmt: skip
    orders = [text(c, "u:Order") for c in setup.findall(".//u:RunSynchronousCommand", NS)]
    assert orders == ["1", "2", "3", "4", "5"]


def test_windows_7_gets_no_windows_8_settings() -> None:
    root = autounattend({"edition": "Windows 7 Professional"}, cygwin=OLD_CYGWIN)
    oobe = comp(root, "oobeSystem", "Microsoft-Windows-Shell-Setup").find("u:OOBE", NS)
    assert oobe is not None
    names = [e.tag.split("}")[1] for e in oobe]
    assert "HideOnlineAccountScreens" not in names
    assert "SkipMachineOOBE" in names


def test_markup_in_text_fields_comes_back_escaped() -> None:
    root = autounattend(
        {
            "time_zone": "Pacific Standard Time_dstoff",
            "account": {"user": "o'brien&co", "password": MARKUP},
        }
    )
    oobe = comp(root, "oobeSystem", "Microsoft-Windows-Shell-Setup")
    assert text(oobe, ".//u:LocalAccount/u:Password/u:Value") == MARKUP
    assert text(oobe, "u:AutoLogon/u:Password/u:Value") == MARKUP
    assert text(oobe, "u:AutoLogon/u:Username") == "o'brien&co"
    zone = text(comp(root, "specialize", "Microsoft-Windows-Shell-Setup"), "u:TimeZone")
    assert zone == "Pacific Standard Time_dstoff"  # the documented no-daylight-saving suffix
    assert passes(root) == ["windowsPE", "specialize", "oobeSystem"]  # nothing injected


# --- the structural check catches what Windows would reject ---------------------------------


def rendered(**windows: Any) -> str:
    return render_files(windows_cfg(windows))["windows/autounattend.xml"]


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ('pass="specialize"', 'pass="firstBoot"', "unknown configuration pass"),
        (
            "Microsoft-Windows-Security-SPP-UX",
            "Microsoft-Windows-Security-Nope",
            "unknown component",
        ),
        ("ComputerName>", "ComputerNam>", "unknown setting"),
        ("HideEULAPage>", "HideEulaPage>", "unknown setting"),
        ("<FullName>", "<FullName><b>x</b>", "a value setting holds elements"),
        ("<Order>2</Order><Type>Primary", "<Order>1</Order><Type>Primary", "used twice"),
    ],
)
def test_check_rejects(old: str, new: str, words: str) -> None:
    good = rendered(firmware="uefi")
    check_autounattend(good, "x86_64")
    bad = good.replace(old, new)
    if words == "used twice":
        bad = rendered().replace("<Order>1</Order><Type>Primary", "<Order>1</Order><Type>Primary")
        bad = bad.replace(
            "</CreatePartitions>",
            '  <CreatePartition wcm:action="add"><Order>1</Order><Type>Primary</Type>'
            "</CreatePartition>\n          </CreatePartitions>",
        )
    assert bad != good
    with pytest.raises(AnswerFileError, match=words):
        check_autounattend(bad, "x86_64")


def test_check_rejects_component_in_wrong_pass_and_wrong_arch() -> None:
    good = rendered()
    moved = good.replace(
        '<settings pass="specialize">\n',
        '<settings pass="specialize">\n    <component name="Microsoft-Windows-Setup" '
        'processorArchitecture="amd64" publicKeyToken="31bf3856ad364e35" language="neutral" '
        'versionScope="nonSxS"><EnableNetwork>true</EnableNetwork></component>\n',
    )
    with pytest.raises(AnswerFileError, match="not valid in this pass"):
        check_autounattend(moved, "x86_64")
    with pytest.raises(AnswerFileError, match="processorArchitecture 'amd64' is not 'x86'"):
        check_autounattend(good, "i686")
    with pytest.raises(AnswerFileError, match="Vista/7 do not accept"):
        check_autounattend(good, "x86_64", modern=False)


# --- winnt.sif ------------------------------------------------------------------------------


XP = {
    "edition": "Windows XP Professional",
    "answer_file": "winnt-sif",
    "product_key": "BCDFG-HJKMP-QRTVW-XY234-6789B",
}


def winnt(windows: dict[str, Any] | None = None) -> configparser.ConfigParser:
    cfg = windows_cfg({**XP, **(windows or {})}, cygwin=OLD_CYGWIN)
    text = render_files(cfg)["windows/winnt.sif"]
    parser = configparser.ConfigParser(
        interpolation=None, strict=True, comment_prefixes=(";",), delimiters=("=",)
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def unquote_inf(value: str) -> str:
    assert value.startswith('"') and value.endswith('"'), value
    return value[1:-1].replace('""', '"').replace("%%", "%")


def test_winnt_sif_values() -> None:
    sif = winnt(
        {"product_key": "BCDFG-HJKMP-QRTVW-XY234-6789B", "computer_name": "xpbox",
         "account": {"user": "bob", "password": MARKUP}}
    )  # fmt: skip
    assert sif["Unattended"]["UnattendMode"] == "FullUnattended"
    assert sif["Unattended"]["OemSkipEula"] == "Yes"
    assert sif["GuiUnattended"]["AutoLogon"] == "Yes"
    assert unquote_inf(sif["GuiUnattended"]["AdminPassword"]) == MARKUP
    assert unquote_inf(sif["GuiUnattended"]["TimeZone"]) == "90"  # UTC → Greenwich, no DST
    assert unquote_inf(sif["UserData"]["ProductKey"]) == "BCDFG-HJKMP-QRTVW-XY234-6789B"
    assert unquote_inf(sif["UserData"]["ComputerName"]) == "xpbox"
    assert unquote_inf(sif["params.MS_TCPIP.Adapter1"]["IPAddress"]) == "192.168.0.1"
    assert unquote_inf(sif["params.MS_TCPIP.Adapter1"]["SubnetMask"]) == "255.255.255.0"
    cmd = unquote_inf(sif["GuiRunOnce"]["Command0"])
    assert r"%d:\wingen\install.cmd" in cmd
    assert "%%d" in sif["GuiRunOnce"]["Command0"]


def test_winnt_sif_other_zone() -> None:
    sif = winnt({"time_zone": "Pacific Standard Time"})
    assert unquote_inf(sif["GuiUnattended"]["TimeZone"]) == "4"


def test_winnt_sif_unknown_time_zone_is_a_user_error() -> None:
    with pytest.raises(UserError) as exc:
        winnt({"time_zone": "Mars Standard Time"})
    assert exc.value.field == "windows.time_zone"


def test_winnt_sif_unused_for_autounattend() -> None:
    text = render_files(windows_cfg())["windows/winnt.sif"]
    assert "Not used" in text
    assert "[Unattended]" not in text


# --- bootstrap.sh and install.cmd ---------------------------------------------------------


@pytest.mark.parametrize(
    "windows",
    [
        {},
        {"architecture": "i686", "account": {"user": "o'brien", "password": MARKUP}},
        XP,
    ],
)
def test_bootstrap_passes_shellcheck(tmp_path: Path, windows: dict[str, Any]) -> None:
    files = render_files(windows_cfg(windows, cygwin=OLD_CYGWIN if windows else {}))
    script = tmp_path / "bootstrap.sh"
    script.write_text(files["windows/wingen/bootstrap.sh"])
    check = subprocess.run(
        ["shellcheck", "--shell=bash", "--severity=style", str(script)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout
    # the values read back in bash as given
    got = subprocess.run(
        ["bash", "-c", 'eval "$(grep -E "^(user|password)=" "$1")"; printf "%s\\n%s" "$user" '
         '"$password"', "_", str(script)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    account = windows.get("account", {"user": "wingen", "password": "wingen"})
    assert got == f"{account['user']}\n{account['password']}"


def test_install_cmd_per_architecture() -> None:
    x64 = render_files(windows_cfg())["windows/wingen/install.cmd"]
    assert "set CYGSETUP=setup-x86_64.exe" in x64
    assert r"set CYGROOT=C:\cygwin64" in x64
    assert "--allow-unsupported-windows" not in x64
    x86 = render_files(windows_cfg({"architecture": "i686"}, cygwin=OLD_CYGWIN))[
        "windows/wingen/install.cmd"
    ]
    assert "set CYGSETUP=setup-x86.exe" in x86
    assert "{{" not in x86
    # 32-bit: a Time Machine Cygwin, which setup installs only when told it may
    assert "-d --allow-unsupported-windows\n" in x86


# --- the checks that setup would stop at -------------------------------------------------


def test_check_rejects_interface_out_of_order() -> None:
    good = rendered()
    swapped = good.replace(
        "<Ipv4Settings>\n            <DhcpEnabled>false</DhcpEnabled>\n          </Ipv4Settings>\n"
        "          <Identifier>52-54-00-12-01-01</Identifier>",
        "<Identifier>52-54-00-12-01-01</Identifier>\n          <Ipv4Settings>\n"
        "            <DhcpEnabled>false</DhcpEnabled>\n          </Ipv4Settings>",
    )
    assert swapped != good
    with pytest.raises(AnswerFileError, match="Windows Setup reads them only as"):
        check_autounattend(swapped, "x86_64")


def test_check_wants_administrator_password_for_server() -> None:
    server = rendered(edition="Windows Server 2025 SERVERDATACENTER")
    check_autounattend(server, "x86_64", server=True)
    start = server.index("<AdministratorPassword>")
    end = server.index("</AdministratorPassword>") + len("</AdministratorPassword>")
    without = server[:start] + server[end:]
    check_autounattend(without, "x86_64")  # a client edition needs none
    with pytest.raises(AnswerFileError, match="needs AdministratorPassword"):
        check_autounattend(without, "x86_64", server=True)


def test_check_wants_every_windows_11_labconfig_key() -> None:
    good = rendered()
    check_autounattend(good, "x86_64", windows11=True)
    without = good.replace("/v BypassCPUCheck ", "/v BypassNothing ")
    check_autounattend(without, "x86_64")  # other editions' setup reads none of them
    with pytest.raises(AnswerFileError, match="without LabConfig BypassCPUCheck"):
        check_autounattend(without, "x86_64", windows11=True)


@pytest.mark.parametrize(
    ("old", "new"),
    [("<Path>E:\\</Path>", "<Path>E:\\NetKVM\\w11\\amd64</Path>"),
     ("<Path>E:\\</Path>", "<Path>D:\\</Path>")],
)  # fmt: skip
def test_check_wants_one_driver_path_per_drive_root(old: str, new: str) -> None:
    good = rendered(virtio_iso={"name": "v.iso", "sha256": "1" * 64})
    check_autounattend(good, "x86_64")
    assert old in good
    with pytest.raises(AnswerFileError, match="not one drive root"):
        check_autounattend(good.replace(old, new), "x86_64")


# --- install.cmd's failure lines (cmd.exe cannot run here: its text is checked) ------------


def _cmd_echo_prints(text: str) -> str:
    """What a batch file's `echo TEXT` prints, delayed expansion off: `%%` is read as `%` first
    (phase 1, percent expansion), then `^` makes the next character plain (phase 2)."""
    return re.sub(r"\^(.)", r"\1", text.replace("%%", "%"))


def test_install_cmd_every_failure_path_writes_one_failure_line_and_stops() -> None:
    cmd = render_files(windows_cfg())["windows/wingen/install.cmd"]
    lines = cmd.splitlines()
    com1 = [line.strip() for line in lines if "COM1" in line and not line.startswith("rem")]
    # the redirection first: `echo ... 1>COM1` would redirect handle 1 and drop the digit
    assert com1 and all(line.startswith(">COM1 echo ") for line in com1), com1
    failures = [n for n, line in enumerate(lines) if line.strip().startswith(">COM1 echo WINGEN")]
    reasons = [_cmd_echo_prints(lines[n].strip().removeprefix(">COM1 echo ")) for n in failures]
    assert [failure_reason(r) for r in reasons] == [
        r"cygwin setup failed with exit code %ERRORLEVEL%; its log: "
        r"%CYGROOT%\var\log\setup.log.full",
        r"cygwin setup left no %CYGROOT%\bin\bash.exe",
        "bootstrap.sh did not run: bash exit code %ERRORLEVEL%",
    ]
    for n in failures:  # each inside an `if … (` block that then leaves the script
        assert lines[n - 1].rstrip().endswith("("), lines[n - 1]
        assert lines[n + 1].strip() == "exit /b 1"
    # exit codes compared with NEQ: `if errorlevel 1` means >= 1 and misses negative NTSTATUS codes
    assert not [line for line in lines if line.strip().startswith("if errorlevel")]


@pytest.mark.parametrize("text", ["a & b | c", "(x) <y> ^z", "100% done", "1>2", "!bang!"])
def test_cmd_echo_prints_back_its_text(text: str) -> None:
    escaped = escape.cmd_echo(text)
    assert _cmd_echo_prints(escaped) == text
    assert not re.search(r"(?<!\^)[&|<>()]", escaped)  # nothing cmd.exe would act on


@pytest.mark.parametrize("text", ["two\nlines", "", "off", "/?"])
def test_cmd_echo_refuses_what_echo_cannot_print(text: str) -> None:
    with pytest.raises(ValueError, match="echo"):
        escape.cmd_echo(text)


def test_ui_language_has_its_fallback() -> None:
    root = autounattend({"language": "en-GB"})
    core = comp(root, "windowsPE", "Microsoft-Windows-International-Core-WinPE")
    assert text(core, "u:UILanguage") == text(core, "u:UILanguageFallback") == "en-GB"
