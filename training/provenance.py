"""Which data a model was trained on, and under which licences (read from each source's SOURCE.txt).

A source is a folder with a SOURCE.txt (or a given folder without documented subfolders). Its licence
line and non-commercial flag come from that file; where one SOURCE.txt covers parts under different
licences, `MIXED_LICENCES` names the parts that are non-commercial, so that only those are left out.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

# A Creative Commons NC licence, or "non-commercial" said of the data rather than in "commercial and
# non-commercial" (a licence that allows both). Any such mention flags the source, "possibly" included.
NON_COMMERCIAL = re.compile(r"\bBY-NC\b|(?<!commercial and )non-commercial", re.IGNORECASE)

# Reviewed by hand from the shared corpus's SOURCE.txt files: sources whose SOURCE.txt flags only some
# of their parts as (possibly) non-commercial, and those parts (globs on the first folder below the source).
MIXED_LICENCES: dict[str, tuple[str, ...]] = {
    "speechbrain": ("ESC50",),  # the five ESC-50 clips are CC BY-NC 3.0; noise/ is the repo's Apache-2.0
    "arctic": ("vcc2016_*",),  # VCC2016 is possibly derived from DAPS (CC BY-NC 4.0); CMU ARCTIC is BSD-style
}


@dataclass(frozen=True)
class Source:
    """One documented data source: its folder, licence line and which of its parts are non-commercial."""

    name: str
    path: Path
    licence: str
    flagged: bool  # SOURCE.txt says (possibly) non-commercial
    non_commercial_parts: tuple[str, ...] = ()

    @classmethod
    def read(cls, folder: Path) -> Source:
        doc = folder / "SOURCE.txt"
        text = doc.read_text(errors="replace") if doc.exists() else ""
        licence = next(
            (line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Licence:")),
            "unknown (no SOURCE.txt)",
        )
        flagged = bool(NON_COMMERCIAL.search(text))
        return cls(folder.name, folder, licence, flagged, MIXED_LICENCES.get(folder.name, ()) if flagged else ())

    def is_non_commercial(self, file: Path) -> bool:
        """Whether `file` (under this source) may only be used non-commercially."""
        if not self.flagged:
            return False
        if not self.non_commercial_parts:
            return True
        parts = file.relative_to(self.path).parts
        return len(parts) > 1 and any(fnmatch.fnmatch(parts[0], glob) for glob in self.non_commercial_parts)

    def summary(self, used_non_commercial: bool) -> dict[str, object]:
        """The sidecar's entry: what was used of this source, and whether any of it was non-commercial."""
        entry: dict[str, object] = {
            "source": self.name,
            "path": str(self.path),
            "licence": self.licence,
            "non_commercial": self.flagged and used_non_commercial,
        }
        if self.flagged and not used_non_commercial:
            entry["left_out"] = list(self.non_commercial_parts) or ["all (non-commercial)"]
        return entry


def sources_under(folder: str | Path) -> list[Source]:
    """The sources in `folder`: its documented subfolders, or `folder` itself."""
    root = Path(folder)
    documented = sorted(p for p in root.iterdir() if p.is_dir() and (p / "SOURCE.txt").exists())
    if (root / "SOURCE.txt").exists() or not documented:
        return [Source.read(root)]
    return [Source.read(p) for p in documented]


def source_of(file: Path, folder: str | Path, sources: list[Source]) -> Source:
    """The source of `file`, one of `sources` (those of `folder`); files outside them belong to `folder`."""
    for source in sources:
        if file.is_relative_to(source.path):
            return source
    return Source.read(Path(folder))


def training_data(
    speech: list[str], noise: list[str], paired: list[str], rir: list[str], allow_non_commercial: bool
) -> dict[str, object]:
    """Provenance block for a sidecar: every data folder with its sources' licences and what was left out.

    `allow_non_commercial` False: the run left out every non-commercial file (the parts named under "left_out")."""
    folders = {"speech": speech, "noise": noise, "paired": paired, "rir": rir}
    sources = {
        kind: [s.summary(allow_non_commercial) for f in dirs if Path(f).is_dir() for s in sources_under(f)]
        for kind, dirs in folders.items()
    }
    non_commercial = any(e["non_commercial"] for entries in sources.values() for e in entries)
    return {
        "folders": folders,
        "sources": sources,
        "allow_non_commercial": allow_non_commercial,
        "non_commercial": non_commercial,
        "note": "trained on non-commercial data: the model may not be used commercially"
        if non_commercial
        else "all sources used allow commercial use",
    }


def initialised_from(
    record: dict[str, object], checkpoint: str, init_record: dict[str, object] | None
) -> dict[str, object]:
    """`record` for a run whose weights started from `checkpoint`: the weights carry what that checkpoint was
    trained on (`init_record`, its own record; None: not recorded), so its licences bind this model too."""
    non_commercial = bool(record["non_commercial"]) or init_record is None or bool(init_record["non_commercial"])
    if not non_commercial:
        note = "all sources used allow commercial use, and those of the weights it started from"
    elif record["non_commercial"]:
        note = str(record["note"])  # its own data's, as `training_data` words it
    else:
        note = (
            "its own sources allow commercial use, but the weights it started from were trained on non-commercial "
            "(or unrecorded) data: the model may not be used commercially"
        )
    return {
        **record,
        "initialised_from": {"checkpoint": checkpoint, "data": init_record},
        "non_commercial": non_commercial,
        "note": note,
    }
