#!/usr/bin/env bash
# Fuzzes with libFuzzer under AddressSanitizer + UndefinedBehaviorSanitizer:
#   scripts/fuzz.sh [SECONDS, default 60] [TARGET, default frontend]
# TARGET: frontend (scanner, parser, and sema when it builds), idx (the trainer's IDX reader,
# plain and gzip: test/fuzz/fuzz_idx.c), npy (the .npy reader: test/fuzz/fuzz_npy.c),
# safetensors (the weights reader and loader: test/fuzz/fuzz_safetensors.c), or all (each for
# SECONDS, one after another).  The runtime targets are built from runtime/idx.c, npy.c,
# safetensors.c, atomic_file.c and error.c with zlib; their seeds are test/fuzz/seeds-TARGET/,
# their corpora grow in test/fuzz/corpus-work-TARGET/ (git-ignored).
# scripts/fuzz-all.sh runs every target and sums the executions.
#
# Builds directly from the sources with clang (clang-19, else clang): flex and bison run
# into build-fuzz/gen, the compiler's sources (all of compiler/*.c and compiler/ops/*.c but
# the driver and the LLVM back end) go into an archive, so a half-written file that the
# front end does not need cannot break the fuzzer.  The seed corpus is examples/*.nn and
# test/*/*.nn; the corpus grows in test/fuzz/corpus-work/ (git-ignored) across runs.
# Crashers are saved to test/fuzz/crashers/ (reproduce: build-fuzz/fuzz_frontend FILE).
# NNCC_FUZZ_PARSE_ONLY=1 fuzzes the parser alone; NNCC_FUZZ_DIR=DIR builds in DIR instead of
# build-fuzz/.  ctest runs `fuzz-all.sh 10` as the test fuzz-smoke (plain build only): every
# target must build and survive ten seconds on its seed corpus.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
target=${2:-frontend}
case $target in frontend|idx|npy|safetensors|all) ;; *) echo "fuzz.sh: unknown target '$target' (frontend, idx, npy, safetensors, all)" >&2; exit 2 ;; esac
out=${NNCC_FUZZ_DIR:-$root/build-fuzz}   # ctest's smoke run (fuzz-smoke) uses its build tree
gen=$out/gen
mkdir -p "$gen" "$out/obj" "$root/test/fuzz/crashers" "$root/test/fuzz/corpus-work"
"$root/scripts/install-deps.sh" --fuzz   # clang-19 and its libFuzzer runtime

cc=""
for c in clang-19 /usr/lib/llvm-19/bin/clang clang; do
  if command -v "$c" >/dev/null 2>&1 &&
     echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' |
       "$c" -x c -fsanitize=fuzzer,address,undefined -o "$out/probe" - >/dev/null 2>&1; then
    cc=$c
    break
  fi
done
if [[ -z $cc ]]; then
  echo "fuzz.sh: no clang with libFuzzer; install clang-19 libclang-rt-19-dev" >&2
  exit 2
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# --- the runtime's file readers ------------------------------------------------------------
fuzz_runtime() {   # idx | npy | safetensors
  local t=$1 rflags=(-std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
                     -fno-omit-frame-pointer -I"$root/runtime" -w)
  mkdir -p "$root/test/fuzz/corpus-work-$t"
  "$cc" "${rflags[@]}" "$root/test/fuzz/fuzz_$t.c" "$root/runtime/idx.c" "$root/runtime/npy.c" \
    "$root/runtime/safetensors.c" "$root/runtime/atomic_file.c" "$root/runtime/error.c" -lz -lm \
    -o "$out/fuzz_$t"
  (cd "$out" && ./"fuzz_$t" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=4096 \
     -artifact_prefix="$root/test/fuzz/crashers/$t-" -print_final_stats=1 \
     "$root/test/fuzz/corpus-work-$t" "$root/test/fuzz/seeds-$t")
}
if [[ $target == idx || $target == npy || $target == safetensors ]]; then
  fuzz_runtime "$target"
  exit
fi
if [[ $target == all ]]; then
  fuzz_runtime idx
  fuzz_runtime npy
  fuzz_runtime safetensors
fi

# --- the front end -------------------------------------------------------------------------
bison -Wall -o "$gen/parser.c" --defines="$gen/parser.h" "$root/grammar/parser.y"
flex -o "$gen/lexer.c" --header-file="$gen/lexer.h" "$root/grammar/lexer.l"

san=(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
defs=(-DNNCC_VERSION='"fuzz"' -DNNCC_BUILD_RUNTIME_DIR='"/nonexistent"'
      -DNNCC_INSTALL_RUNTIME_DIR='"/nonexistent"' -DNNCC_LINK_SANITIZE=0)
[[ ${NNCC_FUZZ_PARSE_ONLY:-0} == 1 ]] && defs+=(-DNNCC_FUZZ_PARSE_ONLY)
cflags=(-std=c11 -g -O1 "${san[@]}" "${defs[@]}" -I"$root/compiler" -I"$gen" -I"$root/runtime"
        -isystem /usr/lib/llvm-19/include -w)

rm -f "$out/obj/"*.o "$out/libnncc_fuzz.a"
srcs=("$gen/parser.c" "$gen/lexer.c")
for f in "$root"/compiler/*.c "$root"/compiler/ops/*.c "$root"/runtime/safetensors.c "$root"/runtime/atomic_file.c; do
  [[ -f $f ]] || continue
  case $(basename "$f") in main.c|codegen.c|artifact.c|backend.c) continue ;; esac
  srcs+=("$f")
done
for f in "${srcs[@]}"; do
  o=$out/obj/$(basename "${f%.c}").o
  [[ $f == */ops/* ]] && o=$out/obj/ops_$(basename "${f%.c}").o
  if ! "$cc" "${cflags[@]}" -c "$f" -o "$o" 2>"$out/obj/$(basename "$f").log"; then
    echo "fuzz.sh: skipping $f (does not compile; see $out/obj/$(basename "$f").log)" >&2
    rm -f "$o"
  fi
done
ar rcs "$out/libnncc_fuzz.a" "$out/obj/"*.o
link() { "$cc" "${cflags[@]}" -fsanitize=fuzzer,address,undefined "$@" \
           "$root/test/fuzz/fuzz_frontend.c" "$out/libnncc_fuzz.a" -lm -o "$out/fuzz_frontend"; }
if ! link 2>"$out/link.log"; then
  echo "fuzz.sh: linking with sema failed (see $out/link.log); fuzzing the parser only" >&2
  link -DNNCC_FUZZ_PARSE_ONLY
fi

seed=$out/seed
rm -rf "$seed"
mkdir -p "$seed"
cp "$root"/examples/*.nn "$seed"/
for f in "$root"/test/*/*.nn; do [[ -f $f ]] && cp "$f" "$seed/$(basename "$(dirname "$f")")_$(basename "$f")"; done
cat >"$out/nn.dict" <<'DICT'
"model"
"block"
"train"
"input"
"target"
"output"
"return"
"true"
"false"
"|>"
"f32["
"i32["
"label["
" : ["
"conv2d("
"dense("
"kernel="
"{\x0a"
"}\x0a"
"\x0a"
DICT

cd "$out"
# -timeout=30: a seed that hits the 300000-block-call limit (test/diag) takes several seconds
# under ASan, and past 10 s when the tests run beside it on a loaded 2-core machine: a false
# "timeout".  30 s still flags a hang.
exec ./fuzz_frontend -max_total_time="$seconds" -max_len=8192 -timeout=30 -rss_limit_mb=4096 \
  -dict="$out/nn.dict" -artifact_prefix="$root/test/fuzz/crashers/" -print_final_stats=1 \
  "$root/test/fuzz/corpus-work" "$seed"
