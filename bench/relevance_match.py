"""Topic-matching throughput with the default topics: entries per second on one core.

Usage: python bench/relevance_match.py [--seconds 1.0]

Each scenario matches title + summary of a set of entries repeatedly in this process (one
core) and reports entries/s. The target is 20,000 entries/s per core.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from feedbot.relevance.topics import Matcher, MatchInput

LABELLED = Path(__file__).resolve().parent.parent / "tests/data/relevance/labelled.jsonl"
TARGET = 20_000

_FILLER = {
    "en": "Analysts said the figures were broadly in line with expectations, although margins "
    "narrowed slightly as the company spent more on marketing and new products this quarter.",
    "fr": "Selon les analystes, les chiffres sont globalement conformes aux attentes, même si "
    "les marges se sont légèrement réduites à cause des dépenses de marketing.",
    "zh-Hans": "分析人士表示，这些数据基本符合预期，但由于营销和新产品投入增加，利润率略有下降。",
    "zh-Hant": "分析人士表示，這些數據基本符合預期，但由於行銷和新產品投入增加，利潤率略有下降。",
}


def _scenarios() -> dict[str, list[MatchInput]]:
    items = [json.loads(line) for line in LABELLED.read_text("utf-8").splitlines() if line]
    docs = {
        lang: [
            MatchInput(title=i["title"], summary=f"{i['summary']} {_FILLER[lang]}")
            for i in items
            if i["lang"] == lang
        ]
        for lang in _FILLER
    }
    unrelated = [
        MatchInput(title=f"Local council approves budget {n}", summary=_FILLER["en"] * 2)
        for n in range(50)
    ]
    html = [
        MatchInput(title=d.title, summary=f"<p>{d.summary}</p><p><a href='#'>More</a></p>")
        for d in docs["en"]
    ]
    return {
        "labelled set, all languages": [d for ds in docs.values() for d in ds],
        "English": docs["en"],
        "French": docs["fr"],
        "Simplified Chinese": docs["zh-Hans"],
        "Traditional Chinese": docs["zh-Hant"],
        "English, no topic (400 chars)": unrelated,
        "English, HTML summaries": html,
    }


def _rate(matcher: Matcher, docs: list[MatchInput], seconds: float) -> tuple[float, float]:
    done = 0
    chars = sum(len(d.title) + len(d.summary) for d in docs) / len(docs)
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for doc in docs:
            matcher.match(doc)
        done += len(docs)
    return done / elapsed, chars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per scenario")
    args = parser.parse_args()
    built = time.perf_counter()
    matcher = Matcher.default()
    print(f"compiled default topics in {(time.perf_counter() - built) * 1000:.1f} ms")
    print(f"{'scenario':32} {'chars/entry':>11} {'entries/s':>10}  vs target")
    for name, docs in _scenarios().items():
        for doc in docs[:5]:
            matcher.match(doc)  # warm caches (OpenCC, lazy imports)
        rate, chars = _rate(matcher, docs, args.seconds)
        verdict = "ok" if rate >= TARGET else "BELOW"
        print(f"{name:32} {chars:11.0f} {rate:10,.0f}  {verdict}")


if __name__ == "__main__":
    main()
