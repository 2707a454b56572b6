"""The trainer's shuffle, transcribed from docs/training.md: epoch e of seed s is the
Fisher-Yates shuffle of range(n) driven by SplitMix64 started at s ^ (e * 0xD1B54A32D192ED03).
Usage: shuffle.py N SEED EPOCH -> the permutation on one line."""
import sys

M = (1 << 64) - 1


def permutation(n, seed, epoch):
    state = (seed ^ (epoch * 0xD1B54A32D192ED03)) & M

    def splitmix64():
        nonlocal state
        state = (state + 0x9E3779B97F4A7C15) & M
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
        return z ^ (z >> 31)

    p = list(range(n))
    for i in range(n - 1, 0, -1):
        bound = i + 1
        threshold = (1 << 64) % bound
        r = splitmix64()
        while r < threshold:
            r = splitmix64()
        j = r % bound
        p[i], p[j] = p[j], p[i]
    return p


if __name__ == "__main__":
    n, seed, epoch = (int(a) for a in sys.argv[1:4])
    print(" ".join(map(str, permutation(n, seed, epoch))))
