"""Which data a model was trained on, and under which licences (read from each source's SOURCE.txt)."""

from __future__ import annotations

import re
from pathlib import Path

# A Creative Commons NC licence, or "non-commercial" said of the data rather than in "commercial and
# non-commercial" (a licence that allows both). Any such mention flags the source, "possibly" included.
NON_COMMERCIAL = re.compile(r"\bBY-NC\b|(?<!commercial and )non-commercial", re.IGNORECASE)


def source_licences(folder: str | Path) -> list[dict[str, object]]:
    """One entry per source folder under `folder` (or `folder` itself): name, licence line, non-commercial flag."""
    root = Path(folder)
    documented = sorted(p for p in root.iterdir() if p.is_dir() and (p / "SOURCE.txt").exists())
    candidates = [root] if (root / "SOURCE.txt").exists() or not documented else documented
    entries = []
    for src in candidates:
        text = (src / "SOURCE.txt").read_text(errors="replace") if (src / "SOURCE.txt").exists() else ""
        licence = next(
            (line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Licence:")),
            "unknown (no SOURCE.txt)",
        )
        entries.append(
            {
                "source": src.name,
                "path": str(src),
                "licence": licence,
                "non_commercial": bool(NON_COMMERCIAL.search(text)),
            }
        )
    return entries


def training_data(speech: list[str], noise: list[str], paired: list[str]) -> dict[str, object]:
    """Provenance block for a sidecar: every data folder with its sources' licences."""
    folders = {"speech": speech, "noise": noise, "paired": paired}
    sources = {
        kind: [e for f in dirs if Path(f).is_dir() for e in source_licences(f)] for kind, dirs in folders.items()
    }
    non_commercial = any(e["non_commercial"] for entries in sources.values() for e in entries)
    return {
        "folders": folders,
        "sources": sources,
        "non_commercial": non_commercial,
        "note": "trained on non-commercial data: the model may not be used commercially"
        if non_commercial
        else "all sources allow commercial use",
    }
