#!/bin/sh
# Trains examples/char_lstm.nn (a byte-level LSTM) on the GNU GPL version 3 for about a
# minute with the standalone trainer, and shows what it writes before and after training and
# the loss of every epoch.  Usage: examples/char_lstm_gpl.sh [SECONDS] [NNCC]
# (default 60 seconds, nncc from PATH).
set -eu
secs=${1:-60}
nncc=${2:-nncc}
here=$(cd "$(dirname "$0")" && pwd)
text=/usr/share/common-licenses/GPL-3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$nncc" "$here/char_lstm.nn" -o "$work/char_lstm"
cd "$work"
echo "== before training (the default initialisation):"
./char_lstm sample --prime "The " --length 200 --temperature 0.8 --seed 1
# one timed epoch says how many fit in the time
t0=$(date +%s.%N)
./char_lstm train --text "$text" --epochs 1 --progress 0 >/dev/null
t1=$(date +%s.%N)
epochs=$(awk -v a="$t0" -v b="$t1" -v s="$secs" 'BEGIN { e = int(s / (b - a)); print e < 1 ? 1 : e }')
echo "== training $epochs epochs (one took $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s):"
./char_lstm train --text "$text" --epochs "$epochs" --save w.safetensors --log loss.csv --progress 0
echo "== loss per epoch: $(awk -F, 'NR > 1 { s[$1] += $3; n[$1]++ } END { for (e = 1; e in s; e++) printf "%.3f ", s[e] / n[e] }' loss.csv)"
echo "== after training:"
./char_lstm sample --weights w.safetensors --prime "The " --length 300 --temperature 0.8 --seed 1
