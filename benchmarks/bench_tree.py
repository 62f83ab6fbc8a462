"""ID3Classifier against scikit-learn's DecisionTreeClassifier on categorical data.

200,000 rows x 20 categorical columns of 2-8 values each; the label comes from a hidden random
multiway tree, and 5% of the labels are flipped. Ours fits a DataFrame of pandas categoricals,
scikit-learn the same data ordinal-encoded (float32, its native dtype), in the same run; each
time is the median of 3 fits. Ours must take at most half of scikit-learn's time: the script
prints PASS or FAIL and exits 1 on FAIL. Then it reports time and peak memory for 1,000,000 rows.

    python benchmarks/bench_tree.py [--rows 200000] [--big-rows 1000000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc

import numpy as np
import pandas as pd

from tree import ID3Classifier

N_FEATURES = 20
NOISE = 0.05
HIDDEN_DEPTH = 4
MAX_RATIO = 0.5


def make_data(n_rows: int, seed: int = 0):
    """Codes ``(n_rows, 20)``, their category counts, and labels from a hidden tree + noise."""
    rng = np.random.default_rng(seed)
    cards = rng.integers(2, 9, size=N_FEATURES)
    codes = np.stack([rng.integers(0, c, size=n_rows) for c in cards], axis=1).astype(np.int8)
    labels = np.empty(n_rows, dtype=np.int64)

    def label(rows, depth, used):
        free = [f for f in range(N_FEATURES) if f not in used]
        if depth == HIDDEN_DEPTH or not free or rng.random() < 0.15:
            labels[rows] = rng.integers(0, 3)
            return
        f = int(rng.choice(free))
        values = codes[rows, f]
        for v in range(cards[f]):
            label(rows[values == v], depth + 1, used | {f})

    label(np.arange(n_rows), 0, frozenset())
    flip = rng.random(n_rows) < NOISE
    labels[flip] = (labels[flip] + rng.integers(1, 3, size=int(flip.sum()))) % 3
    return codes, cards, np.array(["no", "maybe", "yes"])[labels]


def as_frame(codes, cards) -> pd.DataFrame:
    """The codes as a DataFrame of pandas categoricals with string categories."""
    return pd.DataFrame(
        {
            f"c{j}": pd.Categorical.from_codes(codes[:, j], [f"v{v}" for v in range(cards[j])])
            for j in range(codes.shape[1])
        }
    )


def median_time(fit, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fit()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--big-rows", type=int, default=1_000_000)
    args = parser.parse_args()
    from sklearn.tree import DecisionTreeClassifier

    codes, cards, y = make_data(args.rows)
    frame = as_frame(codes, cards)
    ordinal = np.ascontiguousarray(codes, dtype=np.float32)
    ours = ID3Classifier()
    theirs = DecisionTreeClassifier(criterion="entropy", random_state=0)
    t_ours = median_time(lambda: ours.fit(frame, y))
    t_theirs = median_time(lambda: theirs.fit(ordinal, y))
    ratio = t_ours / t_theirs
    acc_ours = np.mean(ours.predict(frame) == y)
    print(
        f"{args.rows:,} rows x {N_FEATURES} categorical columns, {NOISE:.0%} flipped labels "
        "(median of 3 fits)"
    )
    print(
        f"  ID3Classifier (pandas categoricals): {t_ours:7.3f} s  "
        f"{ours.tree_.n_nodes:,} nodes, depth {int(ours.tree_.depth.max())}, "
        f"train accuracy {acc_ours:.3f}"
    )
    print(
        f"  sklearn DecisionTreeClassifier(criterion='entropy', ordinal codes): {t_theirs:7.3f} s  "
        f"{theirs.tree_.node_count:,} nodes, depth {theirs.get_depth()}"
    )
    verdict = "PASS" if ratio <= MAX_RATIO else "FAIL"
    print(f"  ratio ours/sklearn: {ratio:.2f} (must be <= {MAX_RATIO}): {verdict}")

    if args.big_rows:
        codes, cards, y = make_data(args.big_rows, seed=1)
        frame = as_frame(codes, cards)
        del codes
        start = time.perf_counter()
        ID3Classifier().fit(frame, y)
        t_big = time.perf_counter() - start
        tracemalloc.start()
        ID3Classifier().fit(frame, y)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        data_mb = frame.memory_usage(deep=False).sum() / 2**20
        print(
            f"{args.big_rows:,} rows: fit {t_big:.3f} s, peak memory during fit "
            f"{peak / 2**20:.0f} MiB (the DataFrame itself: {data_mb:.0f} MiB)"
        )
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
