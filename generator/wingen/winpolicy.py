"""Windows' default password filter (passfilt.dll), which Windows Server applies to local
accounts: Setup and `net user … /add` refuse a password that fails it.

The rule, from Microsoft's description of "Passwords must meet complexity requirements"
(learn.microsoft.com/en-us/previous-versions/ms813420(v=msdn.10)): at least six characters;
characters from three of upper case, lower case, digits and non-alphanumerics; and not the
account name or a part of it (a run of three or more characters of the name between the
delimiters , . - _ # and white space)."""

from __future__ import annotations

import re

_DELIMITERS = re.compile(r"[,.\-_#\s]+")


def complexity_problem(password: str, user: str) -> str | None:
    """Why Windows' complexity rule refuses `password` for `user`, or None."""
    if len(password) < 6:
        return f"has {len(password)} characters, fewer than 6"
    kinds = sum(
        (
            any(c.isupper() for c in password),
            any(c.islower() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )
    if kinds < 3:
        return f"has {kinds} of the 4 kinds of characters (upper, lower, digit, other), not 3"
    for part in [user, *_DELIMITERS.split(user)]:
        if len(part) >= 3 and part.casefold() in password.casefold():
            return f"contains the account name's {part!r}"
    return None
