"""What a preparation tells: its report (report.json), the summary in markdown, and counts per class."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from operator import attrgetter
from typing import Any

from pipeline.prepare.records import ChunkRecord, PrepareResult, Quarantined, Row


def build_report(
    records: list[ChunkRecord],
    rows: list[Row],
    split_rows: dict[str, list[Row]],
    quarantined: list[Quarantined],
    classes: list[str],
) -> dict[str, Any]:
    """report.json's counts, quarantined items, duplicates (same content hash) and leakage (duplicates
    in several splits); finalize adds the counts per split and class."""
    repeated = {digest for digest, n in Counter(map(attrgetter("digest"), rows)).items() if n > 1}
    groups: dict[str, list[tuple[str, str]]] = {}  # content hash -> (key, split) of each copy
    for r in rows:
        if r.digest in repeated:
            groups.setdefault(r.digest, []).append((r.key, r.split))
    duplicates = [sorted(key for key, _ in group) for group in groups.values()]
    leakage = [
        {"keys": keys, "splits": sorted({split for _, split in group})}
        for keys, group in zip(duplicates, groups.values(), strict=True)
        if len({split for _, split in group}) > 1
    ]
    counted = Counter(itertools.chain.from_iterable(map(attrgetter("labels"), rows)))
    totals = {c: counted[c] for c in classes}
    nonzero = [v for v in totals.values() if v]
    return {
        "images": len(rows),
        "quarantined": [q._asdict() for q in quarantined],
        "duplicates": duplicates,
        "leakage": leakage,
        "class_counts": totals,
        "split_counts": {s: len(v) for s, v in split_rows.items()},
        "imbalance": (max(nonzero) / min(nonzero)) if nonzero else None,
        "decoded": sum(r.decoded for r in records),
        "reused": sum(r.reused for r in records),
        "unchanged": False,
    }


def summary_markdown(result: PrepareResult) -> str:
    """Counts per split and class, quarantined files and why, duplicates and leakage."""
    r = result.report
    lines = [
        f"# Prepared dataset {result.version_dir.name}" + (" (unchanged)" if result.unchanged else ""),
        "",
    ]
    if result.unchanged:
        lines += [f"{r['images']} images; {len(r['quarantined'])} quarantined. The source is unchanged since "
                  f"this version: no new version was written (this run decoded {r['decoded']} and reused "
                  f"{r['reused']} to find that out).", ""]  # fmt: skip
    else:
        lines += [f"{r['images']} images; {len(r['quarantined'])} quarantined; "
                  f"{r['decoded']} decoded, {r['reused']} reused from the previous version", ""]  # fmt: skip
    lines += ["| split | images |", "|---|---:|"] + [f"| {s} | {n} |" for s, n in r["split_counts"].items()]
    lines += ["", "| class | images |", "|---|---:|"] + [
        f"| {c} | {n} |" for c, n in r["class_counts"].items()
    ]
    if r["imbalance"]:
        lines += ["", f"Imbalance (largest / smallest class): {r['imbalance']:.2f}"]
    if r["quarantined"]:
        lines += ["", "| quarantined | reason |", "|---|---|"]
        lines += [f"| {q['key']} | {q['reason']}: {q['message']} |" for q in r["quarantined"]]
    if r["duplicates"]:
        lines += [
            "",
            f"{len(r['duplicates'])} groups of identical images; {len(r['leakage'])} span splits (leakage)",
        ]
        lines += [f"- leakage: {', '.join(g['keys'])} in {', '.join(g['splits'])}" for g in r["leakage"]]
    return "\n".join(lines) + "\n"


def count_rows(result: PrepareResult) -> list[dict[str, Any]]:
    """One row per class: its images in each split and in all."""
    report = result.report
    per_split = report.get("split_class_counts")
    if per_split is None:  # a version written before reports held them: its manifest has them
        splits = json.loads((result.version_dir / "manifest.json").read_text())["splits"]
        per_split = {split: info["class_counts"] for split, info in splits.items()}
    return [
        {"class": c, **{split: counts.get(c, 0) for split, counts in per_split.items()}, "total": total}
        for c, total in report["class_counts"].items()
    ]
