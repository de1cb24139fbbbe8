"""Cygwin offline install: parse setup.ini, resolve a package closure, lock it by hash."""
