"""wingen: one typed config in, Nix out, for builds inside a Windows (or Linux test) VM."""

__version__ = "0.1.0"
