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
    groups: list[list[int]],
) -> dict[str, Any]:
    """report.json's counts, quarantined items, duplicates (``groups``: the rows of each group of
    identical images, dedupe.duplicate_groups) and leakage (duplicates in several splits); finalize
    adds the counts per split and class, the split plan, the duplicates moved and the hints."""
    duplicates = [sorted(rows[i].key for i in group) for group in groups]
    leakage = [
        {"keys": keys, "splits": sorted({rows[i].split for i in group})}
        for keys, group in zip(duplicates, groups, strict=True)
        if len({rows[i].split for i in group}) > 1
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


def split_lines(report: dict[str, Any]) -> list[str]:
    """Where the splits came from, and where identical images went, in words (one line each)."""
    plan = report.get("split_plan")  # reports written before splits could be given lack it
    lines = []
    if plan and plan["given"]:
        carved = (
            f"; {', '.join(plan['carved'])} cut from the given train split by a hash of each key"
            if plan["carved"]
            else "; none cut"
        )
        lines.append(f"splits given by the source: {', '.join(plan['given'])}{carved}")
    elif plan:
        lines.append(f"splits cut by a hash of each key: {', '.join(plan['carved'])}")
    placed = report.get("duplicates_across_splits")
    if report["duplicates"] and placed:
        groups = len(report["duplicates"])
        if placed["dedupe_across_splits"]:
            lines.append(
                f"{groups:,} {'group' if groups == 1 else 'groups'} of identical images, each kept in one "
                f"split ({placed['before']:,} of them spanned splits, {placed['moved']:,} "
                f"{'image' if placed['moved'] == 1 else 'images'} moved; the most held-out split wins)"
            )
        else:
            lines.append(
                f"{groups:,} {'group' if groups == 1 else 'groups'} of identical images, {placed['after']:,} "
                "of them across splits (leakage: dedupe_across_splits is off)"
            )
    return lines


def summary_markdown(result: PrepareResult) -> str:
    """Counts per split and class, where the splits came from, quarantined files and why, duplicates
    and leakage, and hints."""
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
    given = set((r.get("split_plan") or {}).get("given", []))
    lines += ["| split | images | from |", "|---|---:|---|"] + [
        f"| {s} | {n} | {'given' if s in given else 'cut'} |" for s, n in r["split_counts"].items()
    ]
    lines += ["", "| class | images |", "|---|---:|"] + [
        f"| {c} | {n} |" for c, n in r["class_counts"].items()
    ]
    if r["imbalance"]:
        lines += ["", f"Imbalance (largest / smallest class): {r['imbalance']:.2f}"]
    if r["quarantined"]:
        lines += ["", "| quarantined | reason |", "|---|---|"]
        lines += [f"| {q['key']} | {q['reason']}: {q['message']} |" for q in r["quarantined"]]
    lines += [""] + [f"- {line}" for line in split_lines(r)]
    if r["duplicates"]:
        lines += [
            "",
            f"{len(r['duplicates'])} groups of identical images; {len(r['leakage'])} span splits (leakage)",
        ]
        lines += [f"- leakage: {', '.join(g['keys'])} in {', '.join(g['splits'])}" for g in r["leakage"]]
    if r.get("hints"):
        lines += ["", "Hints:"] + [f"- {hint}" for hint in r["hints"]]
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
