#!/usr/bin/env python3
"""mutate.py - mutation testing: does the test suite catch small, plausible bugs?

  scripts/mutate.py [--quick | --tests 'exec runtime ...'] [--only REGEX] [--work DIR]
                    [--sanitize] [--timeout S] [--list] [--dry-run]

The mutants are kept in test/mutations/mutations.txt (the format is described at its top).
For each mutant, one at a time, on a scratch copy of the repository (the files git knows,
plus uncommitted changes; your tree is never modified):
  apply the mutant's edits, rebuild (ninja -j2, incremental), run the tests, restore.
A mutant is CAUGHT when some test fails, SURVIVED when every test passes, INVALID when the
mutated tree does not build (a broken mutant, not a test result), STALE when its original
text no longer occurs exactly once (the code moved: update the list).

Which tests run for each mutant:
  default       the whole lit suite (every directory of test/, as ctest runs it): slow
  --quick       only the tests named on the mutant's `tests:` line: minutes for all
  --tests LIST  these lit paths (under test/, e.g. 'exec/ops_conv.test runtime')
--sanitize builds the scratch copy with -DNNCC_SANITIZE=ON (ASan + UBSan), as CI's second
run.  --list prints the mutants and whether each applies to the current tree (no build:
CI's self-check); --dry-run also applies and restores each one in the scratch copy.

Output: one line per mutant (CAUGHT / SURVIVED / INVALID / STALE, the seconds, and for a
caught one the first failing test), then the survivors and `N caught / M total`.  The exit
status is 1 when a mutant survived or is stale or invalid, 0 otherwise.

Last run: see docs/internals.md, "Testing" (39 caught / 39 total with --quick).
"""
import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
LIST = os.path.join(ROOT, "test", "mutations", "mutations.txt")
LIT = "/usr/lib/llvm-19/build/utils/lit/lit.py"


class Mutant:
    def __init__(self, name, line):
        self.name, self.line = name, line
        self.why = ""
        self.tests = []
        self.hunks = []  # [(file, original, replacement)]


def parse(path):
    mutants, cur, state, f, orig, new = [], None, None, None, [], []

    def close_hunk():
        if cur is not None and state == "new":
            cur.hunks.append((f, "".join(orig), "".join(new)))

    with open(path) as fh:
        lines = fh.readlines()
    for no, line in enumerate(lines, 1):
        if line.startswith("== "):
            close_hunk()
            cur = Mutant(line[3:].strip(), no)
            mutants.append(cur)
            state = "head"
            continue
        if cur is None or (state == "head" and (line.startswith("#") or not line.strip())):
            continue
        if line.startswith("file: ") and state in ("head", "new", "done"):
            close_hunk()
            f, orig, new, state = line[6:].strip(), [], [], "file"
        elif line.startswith("--- original") and state == "file":
            state = "orig"
        elif line.startswith("+++ mutant") and state == "orig":
            state = "new"
        elif state == "orig":
            orig.append(line)
        elif state == "new" and not line.strip():
            close_hunk()          # a blank line ends the replacement
            state = "done"
        elif state == "new":
            new.append(line)
        elif state == "done" and (line.startswith("#") or not line.strip()):
            continue
        elif state == "head" and line.startswith("why: "):
            cur.why = line[5:].strip()
        elif state == "head" and line.startswith("tests: "):
            cur.tests = line[7:].split()
        else:
            sys.exit("%s:%d: unexpected line in mutant %s: %r" % (path, no, cur.name, line))
    close_hunk()
    for m in mutants:
        if not m.hunks:
            sys.exit("%s:%d: mutant %s has no edit" % (path, m.line, m.name))
    names = [m.name for m in mutants]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        sys.exit("%s: duplicate mutant names: %s" % (path, ", ".join(sorted(dup))))
    return mutants


def applies(root, m):
    """None when every original occurs exactly once in its file, else the reason."""
    for f, orig, _ in m.hunks:
        p = os.path.join(root, f)
        if not os.path.exists(p):
            return "%s does not exist" % f
        with open(p) as fh:
            n = fh.read().count(orig)
        if n != 1:
            return "%s: the original occurs %d times" % (f, n)
    return None


def apply(root, m):
    """Applies m's edits in root; returns {file: original content} for restore()."""
    saved = {}
    for f, orig, new in m.hunks:
        p = os.path.join(root, f)
        with open(p) as fh:
            text = fh.read()
        saved.setdefault(f, text)
        with open(p, "w") as fh:
            fh.write(text.replace(orig, new, 1))
    return saved


def restore(root, saved):
    for f, text in saved.items():
        with open(os.path.join(root, f), "w") as fh:
            fh.write(text)


def copy_tree(dst):
    """The files git knows (committed or not, minus deleted ones), copied to dst."""
    out = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others",
                          "--exclude-standard"], check=True, stdout=subprocess.PIPE).stdout
    for rel in filter(None, out.decode().split("\0")):
        src = os.path.join(ROOT, rel)
        if not os.path.isfile(src):
            continue
        d = os.path.join(dst, rel)
        os.makedirs(os.path.dirname(d), exist_ok=True)
        if not os.path.exists(d) or open(src, "rb").read() != open(d, "rb").read():
            shutil.copy2(src, d)


def run(cmd, timeout, **kw):
    """(returncode or None on timeout, output).  The command's process group is killed on a
    timeout (a mutant may make a test loop forever)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True, **kw)
    try:
        out, _ = p.communicate(timeout=timeout)
        return p.returncode, out.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)
        out, _ = p.communicate()
        return None, out.decode("utf-8", "replace")


def build(src, bld, sanitize, configure):
    if configure:
        args = ["cmake", "-S", src, "-B", bld, "-G", "Ninja"]
        if sanitize:
            args += ["-DNNCC_SANITIZE=ON", "-DCMAKE_BUILD_TYPE=Debug"]
        rc, out = run(args, 600)
        if rc != 0:
            return False, out
    rc, out = run(["ninja", "-j2", "-C", bld], 1800)
    return rc == 0, out


def first_failure(out):
    for line in out.splitlines():
        m = re.match(r"^(FAIL|TIMEOUT|UNRESOLVED): nncc :: (\S+)", line)
        if m:
            return "%s %s" % (m.group(1), m.group(2))
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--list", action="store_true", help="print the mutants; no build")
    ap.add_argument("--dry-run", action="store_true",
                    help="copy, apply and restore each mutant; no build, no tests")
    ap.add_argument("--quick", action="store_true", help="only each mutant's own tests")
    ap.add_argument("--tests", default=None, help="lit paths under test/ (space separated)")
    ap.add_argument("--only", default="", help="regex on mutant names")
    ap.add_argument("--file", default=LIST, help="the mutation list")
    # one scratch directory per checkout: two worktrees mutating at once must not share one
    tag = hashlib.sha1(ROOT.encode()).hexdigest()[:8]
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), f"nncc-mutate-{tag}"),
                    help="scratch directory (src/ and build/ inside; reused between runs; "
                         "default: one per checkout)")
    ap.add_argument("--sanitize", action="store_true", help="ASan + UBSan build")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per test run")
    ap.add_argument("--jobs", type=int, default=2, help="lit workers")
    o = ap.parse_args()

    mutants = [m for m in parse(o.file) if re.search(o.only, m.name)]
    if o.list:
        stale = 0
        for m in mutants:
            why = applies(ROOT, m)
            stale += why is not None
            print("%-28s %-6s %s%s" % (m.name, "STALE" if why else "ok", " ".join(m.tests) or "-",
                                       "  (%s)" % why if why else ""))
        print("%d mutants, %d apply, %d stale" % (len(mutants), len(mutants) - stale, stale))
        return 1 if stale else 0

    src = os.path.join(o.work, "src")
    bld = os.path.join(o.work, "build-san" if o.sanitize else "build")
    os.makedirs(src, exist_ok=True)
    copy_tree(src)
    if o.dry_run:
        bad = 0
        for m in mutants:
            why = applies(src, m)
            if why:
                print("STALE    %s  (%s)" % (m.name, why))
                bad += 1
                continue
            restore(src, apply(src, m))
            print("ok       %s" % m.name)
        print("%d mutants, %d apply" % (len(mutants), len(mutants) - bad))
        return 1 if bad else 0

    ok, out = build(src, bld, o.sanitize, configure=not os.path.exists(os.path.join(bld, "build.ninja")))
    if not ok:
        print(out[-3000:])
        print("mutate.py: the unmutated tree does not build")
        return 2
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    results = []
    t_all = time.time()
    for m in mutants:
        t0 = time.time()
        why = applies(src, m)
        if why:
            results.append((m, "STALE", why, 0.0))
            print("STALE    %-28s %s" % (m.name, why), flush=True)
            continue
        saved = apply(src, m)
        try:
            ok, out = build(src, bld, o.sanitize, configure=False)
            if not ok:
                lines = [l for l in out.splitlines() if "error" in l]
                status, detail = "INVALID", (lines[0] if lines else out.strip()[-200:])
            else:
                if o.tests is not None:
                    paths = o.tests.split()
                elif o.quick:
                    paths = m.tests
                else:
                    paths = [""]  # build/test: every suite
                cmd = [sys.executable, LIT, "-sv", "-j%d" % o.jobs] + [
                    os.path.join(bld, "test", p) for p in paths]
                rc, out = run(cmd, o.timeout, env=env)
                if rc is None:
                    status, detail = "CAUGHT", "timed out after %ds" % o.timeout
                elif rc != 0:
                    status, detail = "CAUGHT", first_failure(out) or "lit exit %d" % rc
                else:
                    status, detail = "SURVIVED", "%s pass" % (" ".join(paths).strip() or "all suites")
        finally:
            restore(src, saved)
        secs = time.time() - t0
        results.append((m, status, detail, secs))
        print("%-8s %-28s %5.0fs  %s" % (status, m.name, secs, detail), flush=True)
    build(src, bld, o.sanitize, configure=False)  # leave the scratch build unmutated

    caught = sum(1 for _, s, _, _ in results if s == "CAUGHT")
    survived = [m.name for m, s, _, _ in results if s == "SURVIVED"]
    other = [(m.name, s) for m, s, _, _ in results if s in ("STALE", "INVALID")]
    print()
    if survived:
        print("survived: %s" % ", ".join(survived))
    if other:
        print("not run: %s" % ", ".join("%s (%s)" % x for x in other))
    print("%d caught / %d total  (%s; %.0f s)" % (
        caught, len(results), "--quick" if o.quick and o.tests is None else
        "tests: " + (o.tests or "the whole suite"), time.time() - t_all))
    return 0 if caught == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
