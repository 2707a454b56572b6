"""seq_data.py - learnable synthetic data for the sequence examples, as .npy files the
standalone trainer reads (--data NAME=FILE):

  python3 examples/seq_data.py sentiment DIR [N] [SEQ]   DIR/words.npy [N, SEQ] i32 in [0, 1000),
                                                         DIR/mood.npy [N] in [0, 10): the class
                                                         is the first word's id mod 10 (the LSTM
                                                         must carry it to last(h))
  python3 examples/seq_data.py tagger DIR [N] [SEQ]      DIR/words.npy [N, SEQ] in [0, 5000),
                                                         DIR/tags.npy [N, SEQ] in [0, 17): each
                                                         word's tag is (id + previous id) mod 17

  nncc examples/sentiment.nn -o sentiment
  python3 examples/seq_data.py sentiment data
  ./sentiment train --data words=data/words.npy --data mood=data/mood.npy --epochs 5 --log loss.csv
"""
import os
import sys

import numpy as np


def main():
    kind, out = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 1024
    seq = int(sys.argv[4]) if len(sys.argv) > 4 else 12
    rng = np.random.default_rng(0)
    os.makedirs(out, exist_ok=True)
    if kind == "sentiment":
        words = rng.integers(0, 1000, size=(n, seq)).astype(np.int32)
        np.save(os.path.join(out, "words.npy"), words)
        np.save(os.path.join(out, "mood.npy"), (words[:, 0] % 10).astype(np.int32))
    elif kind == "tagger":
        words = rng.integers(0, 5000, size=(n, seq)).astype(np.int32)
        prev = np.concatenate([np.zeros((n, 1), np.int32), words[:, :-1]], 1)
        np.save(os.path.join(out, "words.npy"), words)
        np.save(os.path.join(out, "tags.npy"), ((words + prev) % 17).astype(np.int32))
    else:
        sys.exit("seq_data.py: sentiment or tagger")


if __name__ == "__main__":
    main()
