#!/usr/bin/env bash
# Runs every fuzzer for SECONDS each (default 10: a smoke run CI can afford) and prints the
# total number of executions:   scripts/fuzz-all.sh [SECONDS]
#
#   front end     scripts/fuzz.sh (scanner, parser, sema)
#   runtime       every other test/fuzz/fuzz_*.c (safetensors, .npy, and any reader that gets
#                 a fuzzer later, e.g. IDX), linked with all of runtime/*.c under libFuzzer,
#                 ASan and UBSan; seeds are written to build-fuzz/seed-NAME/ first
# Crashers go to test/fuzz/crashers/ (reproduce: build-fuzz/fuzz_NAME FILE).  The exit status
# is non-zero when any fuzzer found a crash, a leak or a timeout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-10}
out=$root/build-fuzz
mkdir -p "$out/rt" "$root/test/fuzz/crashers"
"$root/scripts/install-deps.sh" --fuzz >/dev/null   # clang-19 and its libFuzzer runtime
cc=""
for c in clang-19 /usr/lib/llvm-19/bin/clang clang; do
  if command -v "$c" >/dev/null 2>&1; then cc=$c; break; fi
done
[[ -n $cc ]] || { echo "fuzz-all.sh: no clang; install clang-19 libclang-rt-19-dev" >&2; exit 2; }

san=(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
cflags=(-std=c11 -g -O1 "${san[@]}" -I"$root/runtime" -w)
rm -f "$out/rt/"*.o "$out/libnncc_rt_fuzz.a"
for f in "$root"/runtime/*.c; do
  "$cc" "${cflags[@]}" -c "$f" -o "$out/rt/$(basename "${f%.c}").o"
done
ar rcs "$out/libnncc_rt_fuzz.a" "$out/rt/"*.o

# seeds: small valid files of each format
seed_st=$out/seed-safetensors seed_npy=$out/seed-npy
rm -rf "$seed_st" "$seed_npy"
mkdir -p "$seed_st" "$seed_npy"
st() {   # st FILE JSON DATA-BYTES: a safetensors file
  local json=$2 n=${#2}
  printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x\\x00\\x00\\x00\\x00' $((n & 255)) $((n >> 8 & 255)) $((n >> 16 & 255)) $((n >> 24 & 255)))" >"$1"
  printf '%s' "$json" >>"$1"
  head -c "$3" /dev/urandom >>"$1"
}
st "$seed_st/ok.safetensors" '{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"F32","shape":[3],"data_offsets":[24,36]}}' 36
st "$seed_st/meta.safetensors" '{"__metadata__":{"format":"pt"},"b":{"dtype":"F16","shape":[3],"data_offsets":[0,6]},"w":{"dtype":"F64","shape":[2,3],"data_offsets":[6,54]}}' 54
st "$seed_st/bf16.safetensors" '{"w":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},"b":{"dtype":"I64","shape":[3],"data_offsets":[12,36]}}' 36
npy() {   # npy FILE DESCR SHAPE DATA-BYTES: a .npy v1.0 file
  local h="{'descr': '$2', 'fortran_order': False, 'shape': $3, }"
  while (( (10 + ${#h} + 1) % 64 )); do h+=" "; done
  h+=$'\n'
  printf '\x93NUMPY\x01\x00' >"$1"
  printf "$(printf '\\x%02x\\x%02x' $((${#h} & 255)) $((${#h} >> 8)))" >>"$1"
  printf '%s' "$h" >>"$1"
  head -c "$4" /dev/urandom >>"$1"
}
npy "$seed_npy/f4.npy" '<f4' '(2, 3)' 24
npy "$seed_npy/i8.npy" '<i8' '(4,)' 32
npy "$seed_npy/f8.npy" '>f8' '(1, 2, 2)' 32
npy "$seed_npy/u1.npy" '|u1' '(3, 1)' 3

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
total=0 failed=0
report() {   # report NAME LOG STATUS
  local n
  n=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$2" | tail -1 | awk '{print $2}')
  n=${n:-0}
  total=$((total + n))
  printf '%-12s %12s executions%s\n' "$1" "$n" "$([[ $3 == 0 ]] || echo "  FAILED (status $3, see $2)")"
  [[ $3 == 0 ]] || failed=1
}

status=0
"$root/scripts/fuzz.sh" "$seconds" >"$out/frontend.log" 2>&1 || status=$?
report frontend "$out/frontend.log" "$status"
for src in "$root"/test/fuzz/fuzz_*.c; do
  name=$(basename "${src%.c}")
  name=${name#fuzz_}
  [[ $name == frontend ]] && continue
  bin=$out/fuzz_$name
  if ! "$cc" "${cflags[@]}" -fsanitize=fuzzer,address,undefined "$src" "$out/libnncc_rt_fuzz.a" -lm \
       -o "$bin" 2>"$out/$name.build.log"; then
    echo "fuzz-all.sh: $src does not build (see $out/$name.build.log)" >&2
    failed=1
    continue
  fi
  corpus=$root/test/fuzz/corpus-work/$name
  mkdir -p "$corpus"
  seeds=()
  [[ -d $out/seed-$name ]] && seeds=("$out/seed-$name")
  status=0
  (cd "$out" && "$bin" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
     -artifact_prefix="$root/test/fuzz/crashers/${name}-" -print_final_stats=1 \
     "$corpus" "${seeds[@]}") >"$out/$name.log" 2>&1 || status=$?
  report "$name" "$out/$name.log" "$status"
done
echo "total: $total executions in $seconds s per fuzzer"
exit $failed
