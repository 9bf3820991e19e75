"""How a failure reads at the command line: one line, what went wrong and what to do, no key."""

from __future__ import annotations

from dialpref.secrets import scrub

# Exit codes: 2 for what the user can fix (a file, a setting, a server), 70 for a dialpref bug.
USER_ERROR = 2
INTERNAL_ERROR = 70

_USER_ERRORS = (ValueError, OSError, RuntimeError)
_BUGS = (RecursionError, NotImplementedError, UnicodeError)


def exit_code(err: BaseException) -> int:
    return USER_ERROR if isinstance(err, _USER_ERRORS) and not isinstance(err, _BUGS) else INTERNAL_ERROR


def one_line(err: BaseException) -> str:
    """The message on one line; an indented example after it (a suggested --map) is kept as it is."""
    lines = str(err).strip().splitlines()
    example = [l for l in lines[1:] if l.startswith("    ")]
    text = " ".join(" ".join(l for l in lines if l not in example).split()) or type(err).__name__
    if example:
        text += "\n" + "\n".join(example)
    if exit_code(err) == USER_ERROR:
        return scrub(f"error: {text}")
    return scrub(f"internal error ({type(err).__name__}: {text}); rerun with --verbose for the traceback "
                 "and report it")
