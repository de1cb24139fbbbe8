"""CLI: python3 -m wingen.runtime {stage,probe-accel,save,restore} (see the package docstring)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .accel import probe_accel
from .qmp import QMPClient, QMPError
from .snapshot import Tools, restore, save
from .stage import run_stage
from .supervise import Interrupted, StageError, Supervisor
from .vm import COMPRESSIONS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m wingen.runtime")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("stage", help="run one pipeline stage from a JSON spec")
    p.add_argument("spec", type=Path)
    p = sub.add_parser("probe-accel", help="print kvm if KVM really runs a guest, else tcg")
    p.add_argument("--qemu", default="qemu-system-x86_64")
    p.add_argument("--deadline", type=float, default=3.0)
    for name in ("save", "restore"):
        p = sub.add_parser(name, help=f"{name} a VM through its QMP socket")
        p.add_argument("--qmp", required=True, help="QEMU's QMP unix socket")
        p.add_argument("--compression", choices=COMPRESSIONS, default="zstd")
        p.add_argument("--deadline", type=float, default=600.0)
        p.add_argument("--zstd", default="zstd")
        p.add_argument("--gzip", default="gzip")
        if name == "save":
            p.add_argument("--to", required=True, type=Path)
            p.add_argument("--ram-file", type=Path, help="the VM's share=on RAM file (template)")
            p.add_argument("--fsync", action="store_true", help="make the file power-loss safe")
        else:
            p.add_argument("--from", dest="src", required=True, type=Path)
            p.add_argument("--no-cont", action="store_true", help="leave the VM paused")
    args = parser.parse_args(argv)

    if args.cmd == "stage":
        return run_stage(args.spec)
    if args.cmd == "probe-accel":
        print(probe_accel(args.qemu, args.deadline))
        return 0
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
            print(f"wingen-runtime: {args.cmd} failed: {exc}", file=sys.stderr)
            return 1
        except Interrupted as exc:
            print(f"wingen-runtime: {args.cmd} {exc}", file=sys.stderr)
            return 128 + exc.signum
    return 0


if __name__ == "__main__":
    sys.exit(main())
