"""The text forms of γ (CLI flags, config files) → a `Gamma`: one parser for all of them. See `flexip.gate`."""

from __future__ import annotations

import re
from collections.abc import Sequence

from flexip.errors import FlexIPInputError
from flexip.gate.gamma import TEXT_FORMS, Gamma, GammaSchedule, check_gamma_value


def parse_gamma(text: str | Sequence[str]) -> Gamma:
    """γ from its text forms (CLI flags, config files). Several strings (`--gamma 0 0.5 1`) are read as one:

        "0.7"                              → 0.7
        "0,0.5,1"  or  "0" "0.5" "1"       → a sweep; it takes plain numbers only
        "1.0:0.2"                          → GammaSchedule(1.0, 0.2), first step → last step
        "down=0.3,mid=0.5,up=1.0:0.4"      → per block (numbers or START:END); "default=" sets the rest

    A bad form raises one `FlexIPInputError` line that says what was expected.
    """
    tokens = [text] if isinstance(text, str) else list(text)
    whole = " ".join(str(token) for token in tokens)
    values: list[float | GammaSchedule] = []
    blocks: dict[str, float | GammaSchedule] = {}
    for token in tokens:
        if not isinstance(token, str):
            raise FlexIPInputError(f"gamma text must be strings, got {token!r}")
        if "=" in token:
            for entry in filter(str.strip, token.split(",")):
                key, _, value = (part.strip() for part in entry.partition("="))
                if not key or not value or "=" in value:
                    raise FlexIPInputError(
                        f"cannot read per-block gamma {entry.strip()!r}; expected KEY=VALUE entries such as down=0.3,mid=0.5,up=1.0:0.4"
                    )
                if key in blocks:
                    raise FlexIPInputError(f"per-block gamma {whole!r} sets {key} twice")
                blocks[key] = _parse_one(value, whole, f"gamma[{key!r}]")
        else:
            values.extend(_parse_one(piece, whole) for piece in re.split(r"[,\s]+", token) if piece)
    if blocks:
        if values:
            raise FlexIPInputError(f"a per-block gamma goes alone (e.g. down=0.3,up=0.8,default=0.5), got {whole!r}")
        return Gamma.of(blocks)
    if not values:
        raise FlexIPInputError(f"no gamma in {whole!r}; expected {TEXT_FORMS}")
    if len(values) == 1:
        return Gamma(values[0])
    if not all(isinstance(value, float) for value in values):
        raise FlexIPInputError(f"a gamma sweep takes plain numbers; a schedule (START:END) goes alone, got {whole!r}")
    return Gamma(tuple(values), sweep=True)


def sweep_values(value: str | Sequence[str] | Sequence[float] | Gamma, where: str | None = None) -> tuple[float, ...]:
    """The plain γ numbers a grid or an evaluation sweeps over, from text (any form `parse_gamma` reads) or
    numbers: one number, or the values of a sweep. A schedule, per-block or per-sample γ is refused.
    `where` (e.g. a config key) starts every error message."""
    try:
        text = isinstance(value, str) or (isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, str) for v in value))
        gamma = parse_gamma(value) if text else Gamma.of(value)
        if gamma.numbers is None:
            raise FlexIPInputError(f"a sweep takes plain numbers (e.g. 0,0.5,1), not a {gamma.form} gamma")
    except FlexIPInputError as error:
        raise FlexIPInputError(f"{where}: {error}" if where else str(error)) from None
    return gamma.numbers


def _parse_one(text: str, whole: str, name: str = "gamma") -> float | GammaSchedule:
    start, colon, end = text.partition(":")
    if colon:
        return GammaSchedule(_parse_number(start, whole), _parse_number(end, whole))
    return check_gamma_value(_parse_number(text, whole), name)


def _parse_number(text: str, whole: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise FlexIPInputError(f"cannot read gamma {whole!r}; expected {TEXT_FORMS}") from None
