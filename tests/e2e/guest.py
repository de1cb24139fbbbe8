"""The e2e suite's Linux guest config (no pytest here: bench/revive.py imports it too)."""

# Short deadlines so a failure ends quickly; the runtime scales them x3 under TCG.
CONFIG = """\
name = "{name}"
guest = "linux"

[vm]
memory_mib = 256
cpus = 1
disk_size_gib = 1
acceleration = "auto"
controller_memory_mib = 384

[snapshot]
compression = "zstd"

[deadlines]
install = 120
boot = 60
ssh = 10
build = 120
"""
