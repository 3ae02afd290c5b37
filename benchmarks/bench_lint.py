"""How ``zerotrust lint`` scales with the number of rules, in one run.

    python benchmarks/bench_lint.py [--sizes 90 180 360] [--rounds 1]

Policy sets of the shape that used to take minutes: one policy, five allow rules to
each deny rule, every condition three comparisons on the same three attributes (an
int threshold, a string equality, a string prefix), so every pair of rules reads the
same attributes and no pair is told apart by that alone. None of them has a finding.
Each size is linted in turn within every round (``lint_path``, loading included); the
figure is the median over rounds, with the time per rule and the ratio to the smallest
size. Every run must end with no finding and nothing undecided.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zerotrust.lint import lint_path


def policy_yaml(rules: int) -> str:
    """``rules`` rules (five allows to each deny) of the benchmark's shape."""
    allows, denies = rules * 5 // 6, rules // 6
    lines = ["policy: p", "target: {resources: [doc]}", "rules:"]
    for i in range(allows):
        when = (
            f"subject.properties.level >= {i} && resource.properties.kind == 'k{i % 7}'"
            f" && subject.properties.dept.startsWith('d{i % 5}')"
        )
        lines += [f"  - id: a{i}", "    effect: allow", f'    when: "{when}"']
    for j in range(denies):
        when = (
            f"subject.properties.level < {j} || resource.properties.kind == 'x{j}'"
            " || !has(subject.properties.dept)"
        )
        lines += [f"  - id: d{j}", "    effect: deny", f'    when: "{when}"']
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[90, 180, 360])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    times: dict[int, list[float]] = {n: [] for n in args.sizes}
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for n in args.sizes:
            files[n] = Path(tmp) / f"rules{n}.yaml"
            files[n].write_text(policy_yaml(n), encoding="utf-8")
        for _ in range(args.rounds):
            for n, path in files.items():
                start = time.perf_counter()
                report = lint_path(path)
                times[n].append(time.perf_counter() - start)
                assert report.findings == () and report.undecided == 0, report
    first = statistics.median(times[args.sizes[0]])
    print(f"{'rules':>6} {'seconds':>8} {'ms/rule':>8} {'ratio':>6}")
    for n in args.sizes:
        median = statistics.median(times[n])
        print(f"{n:>6} {median:>8.2f} {median / n * 1000:>8.1f} {median / first:>5.2f}x")


if __name__ == "__main__":
    main()
