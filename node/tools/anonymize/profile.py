"""PS3.15 Table E.1-1 as data, and the options that change its actions.

Why data and not code: the table changes with every edition of the standard (rows are
added, actions move).  The whole table ships as ``data/ps3.15-table-e1-1.tsv``; a newer
edition with the same columns can replace it without touching the code.

An action letter means (PS3.15 E.1.1): D replace with a dummy value, Z replace with a
zero-length (or dummy) value, X remove, K keep (sequences are still cleaned inside),
C clean, U replace UIDs consistently.  Compound actions (X/Z, X/D, Z/D, X/Z/D, X/Z/U*)
pick the weakest action that keeps the IOD conformant; that needs the IOD (see ``iod``).
"""

from __future__ import annotations

import csv
import enum
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from node.tools.anonymize.errors import OptionError

__all__ = [
    "Action",
    "EDITION",
    "Option",
    "Options",
    "PrivateTag",
    "Profile",
    "Rule",
    "load_profile",
]

#: The edition of Table E.1-1 shipped in ``data/``.
EDITION = "2024b"


class Option(enum.Enum):
    """The options of Table E.1-1, with their code in CID 7050 (De-identification Method)."""

    RETAIN_SAFE_PRIVATE = ("retain_safe_private", "113111", "Retain Safe Private Option")
    RETAIN_UIDS = ("retain_uids", "113110", "Retain UIDs Option")
    RETAIN_DEVICE_IDENTITY = ("retain_device_identity", "113109", "Retain Device Identity Option")
    RETAIN_INSTITUTION_IDENTITY = (
        "retain_institution_identity",
        "113112",
        "Retain Institution Identity Option",
    )
    RETAIN_PATIENT_CHARACTERISTICS = (
        "retain_patient_characteristics",
        "113108",
        "Retain Patient Characteristics Option",
    )
    RETAIN_FULL_DATES = (
        "retain_long_full_dates",
        "113106",
        "Retain Longitudinal Temporal Information Full Dates Option",
    )
    RETAIN_MODIFIED_DATES = (
        "retain_long_modified_dates",
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    )
    CLEAN_DESCRIPTORS = ("clean_descriptors", "113105", "Clean Descriptors Option")
    CLEAN_STRUCTURED_CONTENT = (
        "clean_structured_content",
        "113104",
        "Clean Structured Content Option",
    )
    CLEAN_GRAPHICS = ("clean_graphics", "113103", "Clean Graphics Option")

    @property
    def column(self) -> str:
        """The column of the TSV holding this option's actions."""
        return self.value[0]

    @property
    def code(self) -> str:
        """Code value in CID 7050 (coding scheme DCM)."""
        return self.value[1]

    @property
    def meaning(self) -> str:
        """Code meaning in CID 7050."""
        return self.value[2]


class Action(enum.Enum):
    """A resolved action, after options are applied (compound actions stay compound)."""

    REMOVE = "X"
    ZERO = "Z"
    DUMMY = "D"
    KEEP = "K"
    UID = "U"
    CLEAN_TEXT = "C"  # clean descriptors, structured content, patient/device text
    SHIFT_DATE = "C-date"  # Modified Dates: shift consistently per patient
    X_Z = "X/Z"
    X_D = "X/D"
    Z_D = "Z/D"
    X_Z_D = "X/Z/D"
    X_Z_U = "X/Z/U*"

    @property
    def is_compound(self) -> bool:
        return "/" in self.value


@dataclass(frozen=True)
class PrivateTag:
    """One safe private attribute: the creator's block is found by name, as PS3.15 E.3.10 lists.

    ``element`` is the low byte of the element number (``0x0C`` for ``(0019,xx0C)``).
    """

    group: int
    creator: str
    element: int

    @classmethod
    def parse(cls, text: str) -> PrivateTag:
        """Parse ``gggg,xxee,CREATOR`` (or ``gggg,ee,CREATOR``)."""
        parts = [p.strip() for p in text.split(",", 2)]
        if len(parts) != 3 or not parts[2]:
            raise OptionError(f"safe private tag {text!r}: expected gggg,xxee,CREATOR")
        try:
            group = int(parts[0], 16)
            element = int(parts[1].lower().replace("xx", ""), 16) & 0xFF
        except ValueError:
            raise OptionError(f"safe private tag {text!r}: expected hex gggg,xxee") from None
        if group % 2 == 0:
            raise OptionError(f"safe private tag {text!r}: group {group:04X} is not odd")
        return cls(group, parts[2], element)


@dataclass(frozen=True)
class Options:
    """Which options of Table E.1-1 to apply, and the policies the table leaves open.

    ``pseudonymize_patient``: Patient's Name and Patient ID (action Z) get a consistent
    pseudonym derived from the secret instead of an empty value, which the definition of Z
    allows ("or a non-zero length value that may be a dummy value"); without it every
    patient of a de-identified set would merge into one.
    ``allow_burned_in``: process instances whose Burned In Annotation is YES.
    """

    retain_safe_private: bool = False
    safe_private: frozenset[PrivateTag] = frozenset()
    retain_uids: bool = False
    retain_device_identity: bool = False
    retain_institution_identity: bool = False
    retain_patient_characteristics: bool = False
    retain_full_dates: bool = False
    retain_modified_dates: bool = False
    clean_descriptors: bool = False
    clean_structured_content: bool = False
    clean_graphics: bool = False
    allow_burned_in: bool = False
    pseudonymize_patient: bool = True

    def selected(self) -> frozenset[Option]:
        """The Table E.1-1 options switched on."""
        flags = {
            Option.RETAIN_SAFE_PRIVATE: self.retain_safe_private,
            Option.RETAIN_UIDS: self.retain_uids,
            Option.RETAIN_DEVICE_IDENTITY: self.retain_device_identity,
            Option.RETAIN_INSTITUTION_IDENTITY: self.retain_institution_identity,
            Option.RETAIN_PATIENT_CHARACTERISTICS: self.retain_patient_characteristics,
            Option.RETAIN_FULL_DATES: self.retain_full_dates,
            Option.RETAIN_MODIFIED_DATES: self.retain_modified_dates,
            Option.CLEAN_DESCRIPTORS: self.clean_descriptors,
            Option.CLEAN_STRUCTURED_CONTENT: self.clean_structured_content,
            Option.CLEAN_GRAPHICS: self.clean_graphics,
        }
        return frozenset(o for o, on in flags.items() if on)

    def validate(self) -> None:
        """Raise ``OptionError`` for combinations this implementation refuses."""
        if self.clean_graphics:
            raise OptionError(
                "Clean Graphics Option is not offered: overlay bitmaps (60xx), curves (50xx) "
                "and graphic annotations cannot be checked for identifying text "
                "automatically; the basic profile removes or replaces them instead"
            )
        if self.retain_full_dates and self.retain_modified_dates:
            raise OptionError("choose one of Retain Full Dates and Retain Modified Dates")
        if self.safe_private and not self.retain_safe_private:
            raise OptionError("a safe private list needs the Retain Safe Private option")


@dataclass(frozen=True)
class Rule:
    """One row of Table E.1-1."""

    tag: str
    keyword: str
    name: str
    basic: str
    options: dict[Option, str]

    def resolve(self, selected: frozenset[Option]) -> Action:
        """The action for this row once ``selected`` options apply.

        Precedence when several options touch a row: shifting dates (Modified Dates) first,
        because keeping the real date under another Retain option would undo it; then any
        K (a Retain option asks to keep it); then any C (clean); then the basic action.
        """
        letters = {o: self.options[o] for o in selected if o in self.options}
        if letters.get(Option.RETAIN_MODIFIED_DATES) == "C":
            return Action.SHIFT_DATE
        if "K" in letters.values():
            return Action.KEEP
        if "C" in letters.values():
            return Action.CLEAN_TEXT
        return Action(self.basic)


_TAG_RE = re.compile(r"^\(([0-9A-Fa-fx]{4}),([0-9A-Fa-fx]{4})\)$")


class Profile:
    """Table E.1-1 indexed by tag, with the masked rows (curves, overlays) and privates."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        self.exact: dict[int, Rule] = {}
        self.masked: list[tuple[int, int, Rule]] = []
        self.private: Rule | None = None
        for rule in rules:
            match = _TAG_RE.match(rule.tag)
            if match is None:
                if "gggg" in rule.tag:
                    self.private = rule
                    continue
                raise ValueError(f"unreadable tag in Table E.1-1: {rule.tag!r}")
            text = (match.group(1) + match.group(2)).lower()
            if "x" in text:
                mask = int("".join("0" if c == "x" else "f" for c in text), 16)
                value = int(text.replace("x", "0"), 16)
                self.masked.append((mask, value, rule))
            else:
                self.exact[int(text, 16)] = rule

    def rule(self, tag: int) -> Rule | None:
        """The row for ``tag`` (public tags; repeating groups through their mask)."""
        found = self.exact.get(tag)
        if found is not None:
            return found
        for mask, value, rule in self.masked:
            if tag & mask == value:
                return rule
        return None

    def actions(self, selected: frozenset[Option]) -> dict[int, Action]:
        """Resolved action for every exact-tag row under ``selected`` options."""
        return {tag: rule.resolve(selected) for tag, rule in self.exact.items()}


@cache
def load_profile() -> Profile:
    """Table E.1-1 shipped with the package (edition ``EDITION``)."""
    text = (
        resources.files("node.tools.anonymize")
        .joinpath("data/ps3.15-table-e1-1.tsv")
        .read_text(encoding="utf-8")
    )
    rules: list[Rule] = []
    for row in csv.DictReader(text.splitlines(), delimiter="\t"):
        options = {o: row[o.column].strip() for o in Option if row.get(o.column, "").strip()}
        rules.append(
            Rule(
                tag=row["tag"].strip(),
                keyword=row["keyword"].strip(),
                name=row["name"].strip(),
                basic=row["basic_profile"].strip(),
                options=options,
            )
        )
    return Profile(rules)
