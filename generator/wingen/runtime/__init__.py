"""wingen.runtime: run VM pipeline stages inside a Nix build (standard library only).

This package is embedded file by file into the rendered Nix and run by a bare python3 as
``python3 -m wingen.runtime ...`` with PYTHONPATH pointing at a directory holding
``wingen/__init__.py`` (may be empty) and ``wingen/runtime/*.py``.  It imports nothing from
the rest of wingen.

Modules, one concern each: ``__main__`` (the CLI), ``derivation`` (a stage as a Nix builder:
the derivation's record to a spec, files prepared, result collected), ``spec`` (the stage spec,
parsed and checked), ``stage`` (orchestration: one method per step action; the one failure
report), ``vm`` (one QEMU process; the one place spec fields become QEMU flags), ``logs`` (serial
consoles and guest output echoed into the build log, the heartbeat),
``qmp`` (the QMP client), ``snapshot`` (save and revive over QMP), ``sparse`` (sparse RAM files),
``accel`` (KVM probe, TCG scaling), ``contract`` (the lines guests and runtime share),
``supervise`` (processes, signals, waits), ``firmware`` (the tiny test BIOS).

CLI
---
``python3 -m wingen.runtime stage``
    The builder of a wingen stage derivation: runs the stage its ``wingen`` attribute describes
    (see ``derivation``).  Exit 0, 1 (failed, reason on stderr), the guest builder's own code,
    or 2 (bad record).
``python3 -m wingen.runtime stage SPEC.json``
    Run one pipeline stage (below).  Exit 0 on success.  On failure exit 1 and print on
    stderr one paragraph saying which step/wait/deadline failed, then for each VM the last
    20 serial-console lines and QEMU's stderr.  Bad spec: one line naming the field, exit 2.
    SIGTERM/SIGINT/SIGHUP (e.g. from Nix) tear everything down and exit 143/130/129.
``python3 -m wingen.runtime probe-accel [--qemu QEMU]``
    Print ``kvm`` if a tiny guest really runs under ``-accel kvm -cpu host``, else ``tcg``.
``python3 -m wingen.runtime save --qmp SOCK --to FILE [--compression zstd|gzip|none|template]``
``    [--ram-file RAM] [--fsync] [--deadline S] [--zstd PATH] [--gzip PATH]``
    Save a running QEMU (stop, migrate to FILE atomically, quit).  Template mode needs the
    VM's RAM in a ``share=on`` memory-backend-file; give its path with ``--ram-file`` and it
    is moved (sparse) to ``FILE.ram``.
``python3 -m wingen.runtime restore --qmp SOCK --from FILE [--compression ...] [--no-cont]``
``    [--deadline S] [--zstd PATH] [--gzip PATH]``
    Feed a QEMU started with ``-incoming defer`` from FILE, wait until loaded, ``cont``.

Stage spec (JSON)
-----------------
::

  {
    "accel": "auto" | "kvm" | "tcg",          # default "auto" (probe; falls back to tcg)
    "tcg_deadline_scale": 3.0,                # every deadline x this under TCG (default:
                                              #   accel.TCG_SCALE)
    "qemu": "/nix/store/...-qemu/bin/qemu-system-x86_64",
    "zstd": "/nix/store/.../bin/zstd",         # optional, default "zstd" on PATH
    "gzip": "/nix/store/.../bin/gzip",         # optional, default "gzip" on PATH
    "zstd_level": 2,                          # optional (zstd -2 -T0: smaller than gzip -6)
    "vde_switch": "/nix/store/.../bin/vde_switch",  # optional (default on PATH), used if "switch"
    "switch": "vde.ctl",                      # optional: start `vde_switch -s vde.ctl` (no -d:
                                              #   it is our child, fed an open stdin pipe, so
                                              #   it exits even if the runtime is SIGKILLed)
    "workdir": ".",                           # optional: where logs go (default cwd)
    "heartbeat": 60,                          # optional: seconds between "still running" lines
    "vms": [
      {"name": "guest", "memory_mib": 1024,
       "cpus": 2, "rtc": "2010-01-01",           # optional: -smp, -rtc base=…,clock=vm
       "firmware": {"code": "OVMF_CODE.fd", "vars": "vars.fd"},   # optional: UEFI pflash
       "drives": [{"file": "disk.qcow2", "interface": "virtio" | "ide" | "floppy",
                   "media": "disk" | "cdrom" | "floppy" | "image", "index": 0}],
                                       # image: a raw disk, read-only (the controller's root)
       "nics": [{"mac": "52:54:00:12:01:01", "model": "virtio-net-pci",
                 "switch": "vde.ctl"}],          # switch: default the spec's "switch"
       "kernel": {"kernel": "bzImage", "initrd": "initrd", "append": "console=ttyS0"},
       "shares": [{"tag": "store", "path": "/nix/store"}],   # 9p (-virtfs)
       "boot": "order=c,once=d",                # optional -boot
       "debug_exit": false,                     # isa-debug-exit: the guest can end QEMU with a code
       "vga": false,                            # a display (a failing stage saves its screen)
       "cpu_model": "Nehalem-v1",               # default: host under KVM, max under TCG
       "failure_file": "xchg/wingen/failure",   # where the guest writes why it failed
       "signal": false,                         # a second serial port (ttyS1), its host end a
                                                #   socket the "signal" step writes a line to
       "args": ["-usb"],                        # anything else, verbatim
       "template": false,                    # optional: RAM in a share=on file so that a
                                             #   later {"save", "compression": "template"} works
       "restore": {"from": "/nix/store/...-state/state",
                   "compression": "zstd" | "gzip" | "none" | "template"},   # optional
       "restore_deadline": 120,              # optional (default 120 s, scaled)
       "no_reboot": true                     # optional (default): a guest reboot ends QEMU;
                                             #   false for guests that reboot (Windows setup)
      },
      {"name": "controller", "memory_mib": 256, "args": ["-kernel", "...", "..."]}
    ],
    "steps": [                     # every action once, as no one stage has them all:
      {"wait_file": "xchg/ready", "deadline": 600, "what": "guest SSH reachable"},
      {"wait_tcp": "127.0.0.1:10022", "deadline": 60},
      {"wait_serial": "guest", "pattern": "GUEST-READY", "deadline": 60, "what": "boot"},
      {"pause": "controller"},     # a base: both paused, then each saved
      {"save": "guest", "to": "/nix/store/...-out/state", "compression": "zstd",
       "deadline": 600, "fsync": false},
      {"signal": "controller"},    # a revive: both restored, the controller told to go on
      {"wait_exit": "controller", "deadline": 900, "what": "build command"},
      {"quit": "guest"}
    ]
  }

All VMs start together (in list order); VMs with "restore" are then revived from their state
before the first step: all loaded at the same time, then all ``cont``-inued together.  Steps
run in order; "what" is optional and only used in messages.  Any wait ends early when another
VM exits non-zero.  Semantics:

* ``wait_file``: path (relative to the cwd) exists.  Fails early if a VM exits non-zero or all
  VMs have exited.
* ``wait_tcp``: ``"HOST:PORT"`` accepts a TCP connection (e.g. a hostfwd port).  A port
  inside the private VM LAN is not visible from the host: let the controller probe it and
  write a marker file for ``wait_file``.
* ``wait_serial``: regular expression (Python ``re``) appears in that VM's serial log.
* ``wait_exit``: that VM's QEMU exits by itself; its exit code must be 0 (a guest power-off),
  and with a ``pattern`` the VM must have printed a line matching it before (its success sign:
  the install's ``WINGEN-INSTALL-DONE``), else the power-off is a failure.
* ``save``: stop, migrate to ``to`` through the compressor (atomic: temp name, rename), quit
  (the quit has its own budget, 10 s scaled, after the migration's deadline).
  Template mode writes the small device state to ``to`` and the (sparse) RAM to ``to.ram``.
  ``none`` writes a sparse mapped-ram file where QEMU has mapped-ram (>= 9.0, probed: faster
  to revive; mapped_ram.py) and records ``"format": "mapped-ram"`` in ``to.json``.
  Also writes ``to.json``: accel, memory, CPU model, cpus, firmware, drives, NICs and the
  compression (and the host's CPU flags); a revive whose settings differ is refused up front
  with that reason, and so is a CPU model this host cannot provide.
  Default deadlines: wait_file/wait_tcp/wait_serial/save 600 s, wait_exit 3600 s, quit 10 s.
* ``pause``: QMP ``stop`` (two VMs saved together are paused first, so neither runs on while
  the other's save is written).
* ``signal``: write the line ``go`` to that VM's signal port (``"signal": true``).
* ``quit``: QMP ``quit``; killed if still there after the step's deadline (default 10 s).
  After the last step every VM still running is quit and the switch stopped.

While a stage runs, each VM's serial console is echoed into the log as ``[NAME] line`` (at most
20 lines a second each; the whole log stays in the file), and a "still running" line with the
step, its deadline and the time spent follows every ``heartbeat`` seconds.  When a stage fails,
each running VM's screen is saved as ``WORKDIR/wingen-NAME.screen.png`` (QMP screendump; a VM
without a display says so) and the report names it.

A VM that exits non-zero ends any wait at once; if it wrote its reason into its
``failure_file``, the report says "VM NAME failed: REASON" instead of QEMU's exit code.
A line on any VM's serial console that begins with ``WINGEN-FAILED:`` (``contract.FAILED``)
ends any wait within a poll, with the rest of the line as the reason, whether or not the VM
goes on running or powers off.  ``contract`` declares every line the guests and the runtime
share.

The runtime adds to every VM: the accelerator and CPU model,
``-m N`` (or a memory-backend-file for template mode), ``-qmp unix:...``, the serial console
(``-chardev file`` logging to ``WORKDIR/wingen-NAME.serial.log``), ``-display none
-nodefaults``, ``-no-reboot`` (unless "no_reboot": false), and
``-incoming defer`` when ``restore`` is set.
QMP sockets live in a private short-path directory (TMPDIR, else /tmp or /dev/shm); the
serial log and QEMU's stderr are ``WORKDIR/wingen-NAME.serial.log`` / ``.stderr.log``.
A "template" VM's RAM file is ``WORKDIR/wingen-NAME.ram`` until a save moves it.
Relative paths in the spec (and in VM args) are relative to the runtime's cwd.
Revive of a template: RAM is ``FROM.ram`` mapped privately (``share=off``), so the guest
never writes back into the stored file; both sides use the ``x-ignore-shared`` capability.
Where QEMU has ``readonly=on,rom=off`` (>= 8.2, probed over QMP: qemu_caps.py) the file is
opened read-only, so a read-only store file owned by another user revives with no copy.
Older QEMU opens it read-write: if it is not writable a sparse copy is revived instead,
which costs time proportional to the RAM in use (template_ram.py).
"""
