"""Structural check of a rendered Autounattend.xml against the names Windows Setup accepts.

The tree below is transcribed from Microsoft Learn, "Unattended Windows Setup Reference"
(learn.microsoft.com/windows-hardware/customize/desktop/unattend/), one page per component, e.g.
`microsoft-windows-setup-diskconfiguration`, `microsoft-windows-shell-setup-oobe`. It lists, per
component, the passes the component may appear in and the settings (element names, nested) that
wingen uses or that are common; anything else in a rendered file is an error, since Windows Setup
stops with "The answer file is invalid" on an unknown pass, component or setting.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from ..errors import WingenError

NS = "urn:schemas-microsoft-com:unattend"
WCM = "http://schemas.microsoft.com/WMIConfig/2002/State"

# Configuration passes (Microsoft Learn: "Windows Setup Configuration Passes").
PASSES = frozenset(
    {"windowsPE", "offlineServicing", "generalize", "specialize", "auditSystem", "auditUser",
     "oobeSystem"}
)  # fmt: skip

Tree = dict[str, Any]  # setting name → nested Tree, or None for a leaf value

_PASSWORD: Tree = {"Value": None, "PlainText": None}
_CREDENTIALS: Tree = {"Domain": None, "Password": None, "Username": None}
_RUN_SYNC: Tree = {
    "RunSynchronousCommand": {
        "Order": None, "Path": None, "Description": None, "Credentials": _CREDENTIALS,
        "WillReboot": None,
    }
}  # fmt: skip
_DRIVER_PATHS: Tree = {"PathAndCredentials": {"Path": None, "Credentials": _CREDENTIALS}}
_LOCALE: Tree = {
    "InputLocale": None, "SystemLocale": None, "UILanguage": None, "UILanguageFallback": None,
    "UserLocale": None,
}  # fmt: skip


@dataclass(frozen=True)
class Component:
    passes: frozenset[str]
    settings: Tree


# Each component's reference page: learn.microsoft.com/windows-hardware/customize/desktop/unattend/
# + the lower-cased component name (e.g. microsoft-windows-shell-setup), with one sub-page per
# setting (e.g. microsoft-windows-shell-setup-oobe-hideeulapage).
def reference_url(component: str) -> str:
    return (
        "https://learn.microsoft.com/windows-hardware/customize/desktop/unattend/"
        + component.lower()
    )


COMPONENTS: dict[str, Component] = {
    "Microsoft-Windows-International-Core-WinPE": Component(
        frozenset({"windowsPE"}),
        {**_LOCALE, "SetupUILanguage": {"UILanguage": None, "WillShowUI": None},
         "LayeredDriver": None},
    ),
    "Microsoft-Windows-International-Core": Component(
        frozenset({"specialize", "oobeSystem", "auditSystem", "auditUser"}), dict(_LOCALE)
    ),
    "Microsoft-Windows-Setup": Component(
        frozenset({"windowsPE"}),
        {
            "DiskConfiguration": {
                "WillShowUI": None,
                "DisableEncryptedDiskProvisioning": None,
                "Disk": {
                    "DiskID": None,
                    "WillWipeDisk": None,
                    "CreatePartitions": {
                        "CreatePartition": {"Order": None, "Type": None, "Size": None,
                                            "Extend": None}
                    },
                    "ModifyPartitions": {
                        "ModifyPartition": {"Order": None, "PartitionID": None, "Format": None,
                                            "Label": None, "Letter": None, "Active": None,
                                            "Extend": None, "TypeID": None}
                    },
                },
            },
            "ImageInstall": {
                "OSImage": {
                    "InstallFrom": {"Path": None, "Credentials": _CREDENTIALS,
                                    "MetaData": {"Key": None, "Value": None}},
                    "InstallTo": {"DiskID": None, "PartitionID": None},
                    "InstallToAvailablePartition": None,
                    "WillShowUI": None,
                    "Compact": None,
                }
            },
            "UserData": {
                "AcceptEula": None, "FullName": None, "Organization": None,
                "ProductKey": {"Key": None, "WillShowUI": None},
            },
            "RunSynchronous": _RUN_SYNC,
            "DynamicUpdate": {"Enable": None, "WillShowUI": None},
            "EnableFirewall": None,
            "EnableNetwork": None,
            "Restart": None,
            "UseConfigurationSet": None,
            "ComplianceCheck": {"DisplayReport": None},
            "Diagnostics": {"OptIn": None},
            "LogPath": None,
        },
    ),
    "Microsoft-Windows-PnpCustomizationsWinPE": Component(
        frozenset({"windowsPE"}), {"DriverPaths": _DRIVER_PATHS}
    ),
    "Microsoft-Windows-PnpCustomizationsNonWinPE": Component(
        frozenset({"offlineServicing", "auditSystem"}), {"DriverPaths": _DRIVER_PATHS}
    ),
    "Microsoft-Windows-Shell-Setup": Component(
        frozenset({"specialize", "oobeSystem", "auditSystem", "auditUser", "offlineServicing"}),
        {
            "ComputerName": None,
            "TimeZone": None,
            "ProductKey": None,
            "RegisteredOwner": None,
            "RegisteredOrganization": None,
            "CopyProfile": None,
            "AutoLogon": {
                "Enabled": None, "LogonCount": None, "Username": None, "Domain": None,
                "Password": _PASSWORD,
            },
            "FirstLogonCommands": {
                "SynchronousCommand": {
                    "Order": None, "CommandLine": None, "Description": None,
                    "RequiresUserInput": None,
                }
            },
            "OOBE": {
                "HideEULAPage": None, "HideOEMRegistrationScreen": None,
                "HideOnlineAccountScreens": None, "HideWirelessSetupInOOBE": None,
                "HideLocalAccountScreen": None, "NetworkLocation": None, "ProtectYourPC": None,
                "SkipMachineOOBE": None, "SkipUserOOBE": None,
            },
            "UserAccounts": {
                "AdministratorPassword": _PASSWORD,
                "LocalAccounts": {
                    "LocalAccount": {
                        "Password": _PASSWORD, "Description": None, "DisplayName": None,
                        "Group": None, "Name": None,
                    }
                },
            },
        },
    ),
    "Microsoft-Windows-TCPIP": Component(
        frozenset({"windowsPE", "specialize"}),
        {
            "Interfaces": {
                "Interface": {
                    "Identifier": None,
                    "Ipv4Settings": {"DhcpEnabled": None, "Metric": None,
                                     "RouterDiscoveryEnabled": None},
                    "Ipv6Settings": {"DhcpEnabled": None, "Metric": None,
                                     "RouterDiscoveryEnabled": None},
                    "UnicastIpAddresses": {"IpAddress": None},
                    "Routes": {"Route": {"Identifier": None, "Metric": None,
                                         "NextHopAddress": None, "Prefix": None}},
                }
            }
        },
    ),
    "Microsoft-Windows-Security-SPP-UX": Component(
        frozenset({"specialize"}), {"SkipAutoActivation": None}
    ),
    "Microsoft-Windows-Deployment": Component(
        frozenset({"specialize", "oobeSystem", "auditSystem", "auditUser", "generalize"}),
        {"RunSynchronous": _RUN_SYNC, "RunAsynchronous": None},
    ),
}  # fmt: skip

# Settings whose children Windows Setup reads in one order only. Microsoft Learn,
# microsoft-windows-tcpip-interfaces-interface: "The settings in Interface must be added in the
# following order: Ipv4Settings, Ipv6Settings, Identifier, UnicastIpAddresses, and then Routes."
ORDERED: dict[str, tuple[str, ...]] = {
    "Interface": ("Ipv4Settings", "Ipv6Settings", "Identifier", "UnicastIpAddresses", "Routes"),
}
# Windows 11 setup's checks that the answer file must turn off on QEMU (facts.LABCONFIG).
WINDOWS_11_LABCONFIG = frozenset(
    {"BypassTPMCheck", "BypassSecureBootCheck", "BypassRAMCheck", "BypassStorageCheck",
     "BypassCPUCheck"}
)  # fmt: skip
_DRIVE_ROOT = re.compile(r"^[A-Z]:\\$")

# OOBE settings Windows Vista and 7 do not know (Microsoft Learn lists them as Windows 8 and later).
WIN8_ONLY = frozenset({"HideOnlineAccountScreens", "HideLocalAccountScreen"})
ARCHITECTURES = {"x86_64": "amd64", "i686": "x86"}
_COMPONENT_ATTRS = frozenset(
    {"name", "processorArchitecture", "publicKeyToken", "language", "versionScope"}
)
_WCM_ATTRS = frozenset({f"{{{WCM}}}action", f"{{{WCM}}}keyValue"})


class AnswerFileError(WingenError):
    """A rendered answer file Windows would reject: a bug in wingen's templates, not user input."""


def _local(tag: str) -> str:
    if not tag.startswith("{" + NS + "}"):
        raise AnswerFileError(f"element {tag!r} is not in the unattend namespace")
    return tag[len(NS) + 2 :]


def check_autounattend(
    text: str,
    architecture: str,
    *,
    modern: bool = True,
    server: bool = False,
    windows11: bool = False,
) -> list[str]:
    """Raise AnswerFileError on anything Windows Setup would reject or stop at; return the passes
    seen. `server`: a Server edition (it asks for the Administrator password); `windows11`: its
    setup checks TPM, Secure Boot, RAM, storage and CPU."""
    try:
        root = ET.fromstring(text)  # noqa: S314 -- our own rendered output, not untrusted input
    except ET.ParseError as exc:
        raise AnswerFileError(f"Autounattend.xml does not parse: {exc}") from None
    if _local(root.tag) != "unattend":
        raise AnswerFileError(f"root element is {root.tag!r}, not unattend")
    want_arch = ARCHITECTURES[architecture]
    seen: list[str] = []
    for settings in root:
        if _local(settings.tag) != "settings":
            raise AnswerFileError(f"unexpected {settings.tag!r} under unattend")
        pass_ = settings.get("pass", "")
        if pass_ not in PASSES:
            raise AnswerFileError(f"unknown configuration pass {pass_!r}")
        if pass_ in seen:
            raise AnswerFileError(f"pass {pass_!r} appears twice")
        seen.append(pass_)
        for comp in settings:
            name = comp.get("name", "")
            if _local(comp.tag) != "component" or name not in COMPONENTS:
                raise AnswerFileError(f"{pass_}: unknown component {name or comp.tag!r}")
            if pass_ not in COMPONENTS[name].passes:
                raise AnswerFileError(
                    f"{pass_}: component {name} is not valid in this pass "
                    f"(see {reference_url(name)})"
                )
            if set(comp.attrib) - _COMPONENT_ATTRS:
                raise AnswerFileError(f"{pass_}/{name}: unexpected attributes {comp.attrib}")
            arch = comp.get("processorArchitecture")
            if arch != want_arch:
                raise AnswerFileError(
                    f"{pass_}/{name}: processorArchitecture {arch!r} is not {want_arch!r} "
                    f"({architecture})"
                )
            _walk(comp, COMPONENTS[name].settings, f"{pass_}/{name}", modern)
    _check_needs(root, server=server, windows11=windows11)
    return seen


def _texts(root: ET.Element, path: str) -> list[str]:
    return [(e.text or "").strip() for e in root.iterfind(path, {"u": NS})]


def _check_needs(root: ET.Element, *, server: bool, windows11: bool) -> None:
    """What a well-formed file must still hold for setup to run through without a question."""
    shell = "u:settings[@pass='oobeSystem']/u:component[@name='Microsoft-Windows-Shell-Setup']"
    if server and not _texts(root, f"{shell}/u:UserAccounts/u:AdministratorPassword/u:Value"):
        raise AnswerFileError(
            "oobeSystem/Microsoft-Windows-Shell-Setup/UserAccounts: a Server edition needs "
            "AdministratorPassword, or setup stops to ask for it"
        )
    if windows11:
        paths = _texts(root, ".//u:RunSynchronousCommand/u:Path")
        have = {v for v in WINDOWS_11_LABCONFIG for p in paths if f"LabConfig /v {v} " in p}
        if have != WINDOWS_11_LABCONFIG:
            raise AnswerFileError(
                "windowsPE/Microsoft-Windows-Setup/RunSynchronous: Windows 11 setup stops on "
                f"QEMU without LabConfig {', '.join(sorted(WINDOWS_11_LABCONFIG - have))}"
            )
    for comp in root.iterfind(".//u:DriverPaths", {"u": NS}):
        roots = _texts(comp, "u:PathAndCredentials/u:Path")
        if len(set(roots)) != len(roots) or not all(_DRIVE_ROOT.match(r) for r in roots):
            raise AnswerFileError(
                f"DriverPaths: {roots} is not one drive root (like E:\\) per drive; setup "
                "searches each path's subfolders itself"
            )


def _walk(elem: ET.Element, tree: Tree, where: str, modern: bool) -> None:
    orders: dict[str, set[str]] = {}
    for child in elem:
        name = _local(child.tag)
        path = f"{where}/{name}"
        if name not in tree:
            raise AnswerFileError(f"{path}: unknown setting")
        if not modern and name in WIN8_ONLY:
            raise AnswerFileError(f"{path}: Windows Vista/7 do not accept this setting")
        if set(child.attrib) - _WCM_ATTRS:
            raise AnswerFileError(f"{path}: unexpected attributes {dict(child.attrib)}")
        sub = tree[name]
        if sub is None:
            if len(child):
                raise AnswerFileError(f"{path}: a value setting holds elements")
            continue
        if (child.text or "").strip():
            raise AnswerFileError(f"{path}: a container setting holds text")
        if name in ORDERED:
            _check_order(child, ORDERED[name], path)
        order = child.find(f"{{{NS}}}Order")
        if order is not None:
            seen = orders.setdefault(name, set())
            if (order.text or "") in seen:
                raise AnswerFileError(f"{path}: Order {order.text} is used twice")
            seen.add(order.text or "")
        _walk(child, sub, path, modern)


def _check_order(elem: ET.Element, order: tuple[str, ...], where: str) -> None:
    got = [_local(c.tag) for c in elem]
    want = sorted(got, key=order.index)
    if got != want:
        raise AnswerFileError(
            f"{where}: children in the order {got}; Windows Setup reads them only as {want}"
        )
