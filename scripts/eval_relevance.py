"""Precision and recall of the default topics on the labelled set.

Usage: python scripts/eval_relevance.py [LABELLED.jsonl] [--min 0.95] [--errors]

Prints one line per topic and exits 1 when any precision or recall is below ``--min``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from feedbot.relevance.topics import Matcher, MatchInput

DEFAULT_SET = Path(__file__).resolve().parent.parent / "tests/data/relevance/labelled.jsonl"


@dataclass(frozen=True, slots=True)
class Score:
    topic: str
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labelled", nargs="?", type=Path, default=DEFAULT_SET)
    parser.add_argument("--min", type=float, default=0.95, dest="minimum")
    parser.add_argument("--errors", action="store_true", help="list misclassified items")
    args = parser.parse_args(argv)

    items = [json.loads(line) for line in args.labelled.read_text("utf-8").splitlines() if line]
    matcher = Matcher.default()
    counts = {t: [0, 0, 0] for t in matcher.topics}
    errors: list[str] = []
    for item in items:
        result = matcher.match(MatchInput(title=item["title"], summary=item["summary"]))
        for topic, count in counts.items():
            got, want = topic in result.topics, topic in item["labels"]
            if got and want:
                count[0] += 1
            elif got or want:
                count[1 if got else 2] += 1
                kind = "false positive" if got else "false negative"
                errors.append(f"  {kind:14} {topic:10} {item['id']:12} {item['title']}")

    scores = [Score(t, *c) for t, c in counts.items()]
    print(f"{len(items)} labelled items from {args.labelled.name}")
    print(f"{'topic':12} {'tp':>4} {'fp':>4} {'fn':>4} {'precision':>10} {'recall':>8}")
    for s in scores:
        print(f"{s.topic:12} {s.tp:4} {s.fp:4} {s.fn:4} {s.precision:10.3f} {s.recall:8.3f}")
    if args.errors and errors:
        print("errors:")
        print("\n".join(errors))
    low = [s.topic for s in scores if min(s.precision, s.recall) < args.minimum]
    if low:
        print(f"below {args.minimum}: {', '.join(low)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
