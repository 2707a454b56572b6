"""Compares two trainer --log files (epoch,step,loss): the same steps, losses within rtol.

    compare_logs.py A.csv B.csv --steps N [--rtol 1e-4]
"""
import argparse
import csv
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--rtol", type=float, default=1e-4)
    args = ap.parse_args()
    rows = []
    for path in (args.a, args.b):
        with open(path) as f:
            rows.append([(int(r["epoch"]), int(r["step"]), float(r["loss"])) for r in csv.DictReader(f)])
    a, b = rows
    if len(a) != args.steps or len(b) != args.steps:
        print("FAIL steps: %d and %d, expected %d" % (len(a), len(b), args.steps))
        return 1
    worst = 0.0
    for x, y in zip(a, b):
        if x[:2] != y[:2]:
            print("FAIL step numbering: %s vs %s" % (x[:2], y[:2]))
            return 1
        worst = max(worst, abs(x[2] - y[2]) / max(abs(y[2]), 1e-12))
    ok = worst <= args.rtol
    print("%s %d steps: max relative loss difference %.3g" % ("PASS" if ok else "FAIL", args.steps, worst))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
