"""One check for config sections: unknown keys are refused with a did-you-mean."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from vjepa.errors import UserError


def reject_unknown(
    given: Iterable[str], known: Iterable[str], where: str, error: type[UserError] = UserError
) -> None:
    """Raise ``error`` naming the first key of ``given`` not in ``known`` as ``where.key``.

    A typo'd key would otherwise be ignored silently and the run would use the default.
    """
    known = sorted(known)
    for key in given:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
            raise error(f"{where}.{key}: unknown setting ({hint})")
