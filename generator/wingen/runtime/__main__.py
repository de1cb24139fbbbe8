"""CLI: python3 -m wingen.runtime {stage,probe-accel,save,restore} (see the package docstring)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .accel import probe_accel
from .derivation import run_derivation
from .qmp import QMPClient, QMPError
from .spec import COMPRESSIONS, SpecError, Tools, parse_spec
from .stage import Stage, execute
from .supervise import Interrupted, StageError, Supervisor, log


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python3 -m wingen.runtime", description="Run wingen's VM stages (stdlib only)."
    )
    sub = top.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser(
        "stage", help="run one pipeline stage: the derivation's (as its builder) or a spec's"
    )
    p.add_argument(
        "spec",
        type=Path,
        nargs="?",
        help="a stage spec (JSON; see the package docstring); without it, run the stage the "
        "Nix derivation being built describes (its `wingen` attribute)",
    )
    p = sub.add_parser("probe-accel", help="print kvm if KVM really runs a guest, else tcg")
    p.add_argument("--qemu", default="qemu-system-x86_64", help="the QEMU binary to probe with")
    p.add_argument(
        "--deadline", type=float, default=3.0, help="seconds the test guest may take (default 3)"
    )
    for name in ("save", "restore"):
        p = sub.add_parser(name, help=f"{name} a VM through its QMP socket")
        p.add_argument("--qmp", required=True, help="QEMU's QMP unix socket")
        p.add_argument(
            "--compression",
            choices=COMPRESSIONS,
            default="zstd",
            help="how the state file is compressed (default zstd)",
        )
        p.add_argument(
            "--deadline", type=float, default=600.0, help="seconds it may take (default 600)"
        )
        p.add_argument("--zstd", default="zstd", help="the zstd program (default: on PATH)")
        p.add_argument("--gzip", default="gzip", help="the gzip program (default: on PATH)")
        if name == "save":
            p.add_argument("--to", required=True, type=Path, help="the state file to write")
            p.add_argument("--ram-file", type=Path, help="the VM's share=on RAM file (template)")
            p.add_argument("--fsync", action="store_true", help="make the file power-loss safe")
        else:
            p.add_argument("--from", dest="src", required=True, type=Path, help="the state file")
            p.add_argument("--no-cont", action="store_true", help="leave the VM paused")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.cmd == "stage":
        return run_derivation() if args.spec is None else run_stage(args.spec)
    if args.cmd == "probe-accel":
        print(probe_accel(args.qemu, args.deadline))
        return 0
    return save_or_restore(args)


def run_stage(spec_path: Path) -> int:
    """Run the stage a spec file describes; the exit code and report as the docstring says."""
    try:
        spec = parse_spec(json.loads(spec_path.read_text()))
    except (OSError, ValueError) as exc:
        log(f"spec {spec_path}: cannot read ({exc}); pass a JSON stage spec")
        return 2
    except SpecError as exc:
        log(str(exc))
        return 2
    return execute(Stage(spec))


def save_or_restore(args: argparse.Namespace) -> int:
    from .snapshot import restore, save  # not the stages' (saved.py says why)

    tools = Tools(zstd=args.zstd, gzip=args.gzip)
    with Supervisor() as sup:
        sup.install_signals()
        try:
            client = QMPClient.connect(args.qmp, deadline=10)
            try:
                if args.cmd == "save":
                    save(
                        client,
                        args.to,
                        args.compression,
                        sup=sup,
                        deadline=args.deadline,
                        tools=tools,
                        ram_file=args.ram_file,
                        fsync=args.fsync,
                    )
                else:
                    restore(
                        client,
                        args.src,
                        args.compression,
                        sup=sup,
                        deadline=args.deadline,
                        tools=tools,
                        cont=not args.no_cont,
                    )
            finally:
                client.close()
        except (StageError, QMPError) as exc:
            log(f"{args.cmd} failed: {exc}")
            return 1
        except Interrupted as exc:
            log(f"{args.cmd} {exc}")
            return 128 + exc.signum
    return 0


if __name__ == "__main__":
    sys.exit(main())
