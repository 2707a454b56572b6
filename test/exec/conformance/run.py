#!/usr/bin/python3
"""run.py - execution conformance: nncc-generated code against PyTorch, on the same weights.

For each model (cases.py): write the .nn source to a work directory, build it with
`nncc model.nn -o model` (or `-o model.so` plus a C program, for the shared-library case),
build the same network as a torch nn.Module whose state_dict names are nncc's parameter
names, initialise it from a fixed seed, save its state_dict as safetensors (st.py), make
random inputs (.npy; f32 normal, i32 token ids in [0, vocab)), run the artifact with
`--weights --input NAME=x.npy --output NAME=y.npy`, run torch (one thread, eval mode, no
grad) twice on the same float32 weights and inputs: in float64 (the reference b) and in
float32 (PyTorch's own float32 answer, reported beside nncc's for scale), and compare every
output.

Error measure (measure.py), per element of every output: a = nncc's float32 output, b =
the float64 reference, s = b's rounding scale (the largest change of b when the float64
reference reruns with every weight, input and layer output perturbed by a float32
rounding, three times):
    err_i       = |a_i - b_i| / max(|b_i|, FACTOR * s_i)      FACTOR = 1e5 (--factor)
    max_rel_err = max_i err_i
A run passes when every output has the right shape and dtype (float32), all of a is finite,
and max_rel_err <= 1e-4 (--tol).  Each element is held to 1e-4 of itself, down to a floor
of its own: an element near zero (cancellation, a softmax tail, a small tanh) may be off
by 10 rounding scales (1e-4 * FACTOR), however large the other elements are.

Why float64 as the reference: comparing two float32 implementations adds their errors; the
float64 result is what both approximate.  PyTorch's own float32 answer is scored the same
way and printed beside nncc's on every PASS line (torch f32: ...), for scale.
`--reference f32` gates on torch float32 instead; `--floor F` adds the old global floor
F * max|b| (the measure before issue 11 was --floor 1e-2 --factor 0); `--calibrate` prints
the smallest FACTOR each case needs, for nncc and for PyTorch float32.

Every case prints one line, `PASS <case>  max_rel_err=<e>` or `FAIL <case>  <reason>`; a
model that nncc cannot build yet FAILs each of its runs (with nncc's first error lines).
Nothing is skipped.  The last lines are `N passed, M failed`, then the worst error; the
exit status is 1 when anything failed.

Options: --nncc PATH, --filter REGEX (on case names), --jobs N (models built and run in
parallel processes), --keep DIR (keep each model's work directory under DIR), --list,
--check-names (print each example's state_dict keys and compare them with docs/language.md
("Parameter names") as written out in models.EXPECTED_NAMES), --self-check (no nncc: the
"artifact" is PyTorch in float64, to test this harness itself), --tol, --timeout.
"""
import argparse
import copy
import multiprocessing
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SRCROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import cases  # noqa: E402
import measure  # noqa: E402
import models  # noqa: E402
import st  # noqa: E402

OPTS = None  # the parsed command line, visible in the worker processes (fork)


# ---------------------------------------------------------------------------------------
# Reference side

def seed_of(name):
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def init_module(mod, seed, gain):
    """Random weights at a scale that keeps activations O(1) through deep stacks:
    conv/dense weights U(-b, b), b = gain * sqrt(3 / fan_in) (gain 1.41 is He's for relu
    nets, 1.0 for tanh ones); their biases U(-0.2, 0.2); recurrent layers 1.5x torch's own
    U(-1/sqrt(units), 1/sqrt(units)), so that gates and states leave the linear region;
    embeddings N(0, 1)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for m in mod.modules():
            if isinstance(m, nn.RNNBase):
                bound = 1.5 / m.hidden_size ** 0.5
                for p in m.parameters():
                    p.uniform_(-bound, bound)
            elif isinstance(m, nn.Embedding):
                m.weight.normal_(0.0, 1.0)
            elif isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                b = gain * (3.0 / fan_in) ** 0.5
                m.weight.uniform_(-b, b)
                if m.bias is not None:
                    m.bias.uniform_(-0.2, 0.2)
    return mod


def make_inputs(model, batch, seq, seed):
    rng = np.random.default_rng(seed)
    out = {}
    for inp in model.inputs:
        shape = [batch] + [seq if d == cases.SEQ else d for d in inp.shape]
        if inp.dtype == "i32":
            a = rng.integers(0, inp.vocab, size=shape, dtype=np.int64).astype("<i4")
            if inp.bad_id:
                a.flat[a.size // 2] = inp.vocab
        else:
            a = rng.standard_normal(shape) * inp.scale
            if inp.decades:
                a *= 10.0 ** rng.uniform(inp.decades[0], inp.decades[1], size=shape)
            a = a.astype("<f4")
        out[inp.name] = np.ascontiguousarray(a)
    return out


def torch_forward(mod, inputs, double=False):
    kw = {}
    for k, v in inputs.items():
        t = torch.from_numpy(v.copy())
        if double and t.dtype == torch.float32:
            t = t.double()
        kw[k] = t
    with torch.no_grad():
        res = mod(**kw)
    return {k: v.detach().cpu().numpy() for k, v in res.items()}


def torch_inputs(inputs, double=False):
    kw = {}
    for k, v in inputs.items():
        t = torch.from_numpy(v.copy())
        if double and t.dtype == torch.float32:
            t = t.double()
        kw[k] = t
    return kw


def forward_tensors(mod, kw):
    with torch.no_grad():
        res = mod(**kw)
    return {k: v.detach().cpu().numpy() for k, v in res.items()}


def compare(a, b, s):
    """Returns (max_rel_err, None) or (None, reason).  See the module comment."""
    if a.shape != b.shape:
        return None, "shape %s, torch %s" % (list(a.shape), list(b.shape))
    if a.dtype != np.float32:
        return None, "dtype %s, expected float32" % a.dtype
    if not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))[0]
        return None, "non-finite value %r at %s" % (a[tuple(bad)], bad.tolist())
    if a.size == 0:
        return 0.0, None
    return float(np.max(measure.element_errors(a, b, s, OPTS.factor, OPTS.floor))), None


def where_worst(a, b, s):
    rel = measure.element_errors(a, b, s, OPTS.factor, OPTS.floor)
    i = np.unravel_index(np.argmax(rel), rel.shape)
    return "at %s: nncc %.7g, reference %.7g (rounding scale %.2g)" % (
        list(map(int, i)), float(a[i]), float(b[i]), float(np.asarray(s)[i]))


# ---------------------------------------------------------------------------------------
# Artifact side

def short(text, limit=400):
    lines = [l.strip() for l in text.strip().splitlines() if l.strip()]
    s = " | ".join(lines[:4])
    return s if len(s) <= limit else s[:limit] + "..."


def run_cmd(cmd, cwd, timeout):
    """Returns (returncode or None on timeout, stdout+stderr text, seconds)."""
    t0 = time.time()
    try:
        p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace"), time.time() - t0
    except subprocess.TimeoutExpired:
        return None, "timed out after %ds" % timeout, time.time() - t0
    except OSError as e:  # no such program, not executable
        return 127, "cannot run %s: %s" % (cmd[0], e.strerror or e), time.time() - t0


def describe_status(rc):
    if rc is None:
        return "timed out"
    if rc < 0:
        try:
            import signal
            return "killed by %s" % signal.Signals(-rc).name
        except Exception:
            return "killed by signal %d" % -rc
    return "exit status %d" % rc


def build(model, wd, artifact):
    """Builds the artifact with nncc.  Returns (ok, reason, extra result lines)."""
    src = os.path.join(wd, "model.nn")
    with open(src, "w") as f:
        f.write(model.source)
    cmd = [OPTS.nncc, src, "-o", artifact] + OPTS.nncc_flag
    rc, out, _ = run_cmd(cmd, wd, OPTS.timeout)
    if rc == 0 and os.path.exists(artifact):
        return True, None, []
    reason = "nncc %s: %s" % (describe_status(rc), short(out) or "(no output)")
    if rc == 0:
        reason = "nncc exited 0 but wrote no %s" % os.path.basename(artifact)
    if model.has_loss and "--no-train" not in OPTS.nncc_flag:
        # Forward conformance should not wait for training code generation: retry without it,
        # and report the default build's failure as a case of its own.
        rc2, out2, _ = run_cmd(cmd + ["--no-train"], wd, OPTS.timeout)
        if rc2 == 0 and os.path.exists(artifact):
            return True, None, [("FAIL", "build_default_" + model.name,
                                 "builds only with --no-train; default: " + reason, None)]
    return False, reason, []


def run_exe(model, wd, exe, inputs, wpath, tag):
    """Runs the standalone executable; returns ({output: array}, None) or (None, reason)."""
    cmd = [exe, "--weights", wpath]
    in_paths = {}
    for name, arr in inputs.items():
        p = os.path.join(wd, "%s.%s.npy" % (tag, name))
        np.save(p, arr)
        in_paths[name] = p
        cmd += ["--input", "%s=%s" % (name, p)]
    outs = {}
    for name in model.outputs:
        p = os.path.join(wd, "%s.out.%s.npy" % (tag, name))
        if os.path.exists(p):
            os.unlink(p)
        outs[name] = p
        cmd += ["--output", "%s=%s" % (name, p)]
    if OPTS.self_check:
        return fake_exe(model, wpath, in_paths, outs), None
    rc, text, _ = run_cmd(cmd, wd, OPTS.timeout)
    with open(os.path.join(wd, "%s.cmd" % tag), "w") as f:
        f.write(" ".join(shlex.quote(c) for c in cmd) + "\n")
    if rc != 0:
        return None, "executable %s: %s" % (describe_status(rc), short(text) or "(no output)")
    got = {}
    for name, p in outs.items():
        if not os.path.exists(p):
            return None, "executable wrote no output file for %s" % name
        try:
            got[name] = np.load(p, allow_pickle=False)
        except Exception as e:  # a malformed .npy
            return None, "output %s: unreadable .npy (%s)" % (name, e)
    return got, None


def fake_exe(model, wpath, in_paths, outs, raw_shapes=None):
    """--self-check: plays the artifact with a fresh torch module in float32, loaded from the
    files on disk (in_paths: {input: .npy path}, or raw float32 files when raw_shapes gives
    their shapes): tests the files, the names (strict load) and calibrates the measure."""
    mod = model.make().eval()
    w = st.load(wpath)
    mod.load_state_dict({k: torch.from_numpy(v) for k, v in w.items()}, strict=True)
    ins = {}
    for name, p in in_paths.items():
        if raw_shapes:
            ins[name] = np.fromfile(p, dtype="<f4").reshape(raw_shapes[name])
        else:
            ins[name] = np.load(p, allow_pickle=False)
    res = torch_forward(mod, ins)
    got = {}
    for name, p in outs.items():
        np.save(p, res[name].astype("<f4"))
        got[name] = np.load(p)
    return got


C_PROGRAM = os.path.join(HERE, "lenet5_main.c")


def build_c_program(wd, so):
    exe = os.path.join(wd, "lenet5_main")
    cc = shlex.split(os.environ.get("CC", "cc"))
    cmd = cc + ["-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-I", wd, C_PROGRAM, so,
           "-Wl,-rpath," + wd, "-o", exe]
    rc, out, _ = run_cmd(cmd, wd, OPTS.timeout)
    if rc != 0:
        return None, "cc %s: %s" % (describe_status(rc), short(out))
    return exe, None


def run_so(model, wd, prog, inputs, wpath, tag, batch):
    """Runs the C program that links the shared library; raw float32 files in and out."""
    (name, arr), = inputs.items()
    pin = os.path.join(wd, "%s.in.raw" % tag)
    pout = os.path.join(wd, "%s.out.raw" % tag)
    arr.astype("<f4").tofile(pin)
    if os.path.exists(pout):
        os.unlink(pout)
    n_out = batch * 10
    if OPTS.self_check:
        got = fake_exe(model, wpath, {name: pin}, {"logits": os.path.join(wd, "%s.out.npy" % tag)},
                       raw_shapes={name: arr.shape})
        return got, None
    rc, text, _ = run_cmd([prog, "run", wpath, pin, str(batch), pout, str(n_out)], wd, OPTS.timeout)
    if rc != 0:
        return None, "lenet5_main %s: %s" % (describe_status(rc), short(text))
    raw = np.fromfile(pout, dtype="<f4")
    if raw.size != n_out:
        return None, "lenet5_main wrote %d floats, expected %d" % (raw.size, n_out)
    return {"logits": raw.reshape(batch, 10)}, None


# ---------------------------------------------------------------------------------------
# One model: build, then every run.

def write_weights(model, wd, mod):
    sd = {k: v for k, v in mod.state_dict().items()}
    wpath = os.path.join(wd, "w.safetensors")
    if model.error == "missing_weight":
        sd.pop(sorted(sd)[0])
    elif model.error == "extra_weight":
        sd["unexpected.weight"] = torch.zeros(3)
    elif model.error == "misshaped_weight":
        k = sorted(sd)[0]
        sd[k] = torch.zeros(sd[k].numel() + 1)
    st.save(wpath, sd)
    return wpath


def process_model(idx):
    model = MODELS[idx]
    torch.set_num_threads(1)
    t0 = time.time()
    results = []  # (status, case name, detail, err)
    wd_obj = None
    if OPTS.keep:
        wd = os.path.join(OPTS.keep, model.name)
        shutil.rmtree(wd, ignore_errors=True)
        os.makedirs(wd)
    else:
        wd_obj = tempfile.TemporaryDirectory(prefix="nncc-exec-")
        wd = wd_obj.name
    try:
        runs = [r for r in model.runs if OPTS.filter.search(model.run_name(*r))]
        so = model.kind == "so"
        artifact = os.path.join(wd, "lenet5.so" if so else "model")
        if OPTS.self_check:
            ok, reason, extra = True, None, []
            with open(os.path.join(wd, "model.nn"), "w") as f:
                f.write(model.source)
        else:
            ok, reason, extra = build(model, wd, artifact)
        results += extra
        prog = None
        if ok and so and not OPTS.self_check:
            hdr = os.path.join(wd, "lenet5.h")
            if not os.path.exists(hdr):
                ok, reason = False, "nncc wrote no lenet5.h beside lenet5.so"
            else:
                prog, reason = build_c_program(wd, artifact)
                ok = prog is not None
        if not ok:
            for r in runs:
                results.append(("FAIL", model.run_name(*r), reason, None))
            if so:
                results.append(("FAIL", model.name + "_errors", reason, None))
            return results, time.time() - t0
        mod = init_module(model.make(), seed_of(model.name), model.gain).eval()
        mod64 = copy.deepcopy(mod).double()
        wpath = write_weights(model, wd, mod)
        for (batch, seq) in runs:
            name = model.run_name(batch, seq)
            tag = "b%d%s" % (batch, "" if seq is None else "s%d" % seq)
            inputs = make_inputs(model, batch, seq, seed_of(name))
            if model.kind == "error":
                results.append(check_error(model, wd, artifact, inputs, wpath, tag, name))
                continue
            try:
                want32 = torch_forward(mod, inputs)
                in64 = torch_inputs(inputs, double=True)
                want64 = forward_tensors(mod64, in64)
                scale = measure.rounding_scale(forward_tensors, mod64, in64, want64,
                                               seed=seed_of(name))
                want = want64 if OPTS.reference == "f64" else want32
            except Exception as e:
                results.append(("FAIL", name, "HARNESS BUG: torch failed: %s" % e, None))
                continue
            if so:
                got, reason = run_so(model, wd, prog, inputs, wpath, tag, batch)
            else:
                got, reason = run_exe(model, wd, artifact, inputs, wpath, tag)
            if got is None:
                results.append(("FAIL", name, reason, None))
                continue
            worst, detail, torch_err, need = 0.0, None, 0.0, [0.0, 0.0]
            for out in model.outputs:
                torch_err = max(torch_err, compare(want32[out], want64[out], scale[out])[0])
                e, why = compare(got[out], want[out], scale[out])
                if why:
                    detail = "output %s: %s" % (out, why)
                    break
                if OPTS.calibrate:
                    need[0] = max(need[0], measure.needed_factor(got[out], want[out], scale[out], OPTS.tol))
                    need[1] = max(need[1], measure.needed_factor(want32[out], want64[out], scale[out], OPTS.tol))
                if e > OPTS.tol and detail is None:
                    detail = "output %s: max_rel_err=%.2e > %g %s" % (out, e, OPTS.tol, where_worst(got[out], want[out], scale[out]))
                worst = max(worst, e)
            if detail:
                results.append(("FAIL", name, detail, worst if "max_rel_err" in detail else None))
            else:
                extra = "  needs factor %.2g (torch f32 %.2g)" % tuple(need) if OPTS.calibrate else ""
                results.append(("PASS", name, "max_rel_err=%.1e  (torch f32: %.1e)%s" % (worst, torch_err, extra), worst))
        if so:
            results.append(check_so_errors(model, wd, prog, wpath))
        return results, time.time() - t0
    except Exception as e:  # a harness bug must be loud, never a pass
        import traceback
        tb = traceback.format_exc().strip().splitlines()
        results.append(("FAIL", model.name, "HARNESS EXCEPTION %s: %s (%s)" % (type(e).__name__, e, tb[-3] if len(tb) > 2 else ""), None))
        return results, time.time() - t0
    finally:
        if wd_obj is not None:
            wd_obj.cleanup()


def check_error(model, wd, exe, inputs, wpath, tag, name):
    """An error case passes when the executable exits with status 1 (a run-time error: not
    a usage error, a signal or a sanitizer report) and a message; errors.test checks that the
    message names what is wrong (the tensor, the shapes, the token id and its place)."""
    if OPTS.self_check:
        return ("PASS", name, "(self-check: not run)", None)
    cmd = [exe, "--weights", wpath]
    for k, arr in inputs.items():
        p = os.path.join(wd, "%s.%s.npy" % (tag, k))
        np.save(p, arr)
        cmd += ["--input", "%s=%s" % (k, p)]
    for k in model.outputs:
        cmd += ["--output", "%s=%s" % (k, os.path.join(wd, "%s.out.%s.npy" % (tag, k)))]
    rc, text, _ = run_cmd(cmd, wd, OPTS.timeout)
    if rc is None or rc < 0 or rc >= 128:
        return ("FAIL", name, "expected a reported error, got %s: %s" % (describe_status(rc), short(text)), None)
    if rc == 0:
        return ("FAIL", name, "expected a non-zero exit for %s, got exit 0" % model.error, None)
    if rc != 1:
        return ("FAIL", name, "expected exit status 1 (a run-time error) for %s, got %d: %s" % (
            model.error, rc, short(text)), None)
    if "Sanitizer" in text or "runtime error:" in text:
        return ("FAIL", name, "sanitizer report: %s" % short(text), None)
    if not text.strip():
        return ("FAIL", name, "exit status %d but no message" % rc, None)
    return ("PASS", name, "rejected (exit %d): %s" % (rc, short(text, 300)), None)


def check_so_errors(model, wd, prog, wpath):
    name = model.name + "_errors"
    if OPTS.self_check:
        return ("PASS", name, "(self-check: not run)", None)
    rc, text, _ = run_cmd([prog, "errors", wpath], wd, OPTS.timeout)
    if rc != 0:
        return ("FAIL", name, "lenet5_main errors: %s: %s" % (describe_status(rc), short(text)), None)
    return ("PASS", name, "bad arguments reported through nncc_last_error", None)


# ---------------------------------------------------------------------------------------

def check_names():
    """Prints each example module's state_dict keys and compares them with the expected ones."""
    bad = 0
    for m in cases.example_models(OPTS.examples):
        if not OPTS.filter.search(m.name):
            continue
        keys = list(m.make().state_dict().keys())
        want = models.EXPECTED_NAMES[m.example]
        ok = sorted(keys) == sorted(want)
        bad += not ok
        print("%s %s: %s" % ("OK  " if ok else "DIFF", m.example, " ".join(keys)))
        if not ok:
            print("     missing %s, extra %s" % (sorted(set(want) - set(keys)), sorted(set(keys) - set(want))))
    return 1 if bad else 0


def main():
    global OPTS, MODELS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nncc", default=os.path.join(SRCROOT, "build", "nncc"))
    ap.add_argument("--examples", default=os.path.join(SRCROOT, "examples"))
    ap.add_argument("--filter", default="", help="regex on case names")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--keep", default=None, help="keep work directories under this one")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--factor", type=float, default=measure.FACTOR,
                    help="floor: FACTOR times each element's rounding scale (see above)")
    ap.add_argument("--floor", type=float, default=0.0,
                    help="also a global floor: FLOOR times max|b| (the old measure: 1e-2)")
    ap.add_argument("--calibrate", action="store_true",
                    help="print the smallest --factor each case needs (nncc, torch f32)")
    ap.add_argument("--reference", choices=("f64", "f32"), default="f64",
                    help="gate on torch in float64 (default) or float32")
    ap.add_argument("--timeout", type=int, default=300, help="seconds per nncc or artifact run")
    ap.add_argument("--nncc-flag", action="append", default=[], help="extra nncc argument (repeatable)")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--check-names", action="store_true")
    ap.add_argument("--self-check", action="store_true",
                    help="no nncc: torch in float64 plays the artifact (tests the harness)")
    OPTS = ap.parse_args()
    OPTS.filter = re.compile(OPTS.filter)
    if OPTS.keep:
        OPTS.keep = os.path.abspath(OPTS.keep)
        os.makedirs(OPTS.keep, exist_ok=True)
    OPTS.nncc = os.path.abspath(OPTS.nncc)
    if OPTS.check_names:
        return check_names()

    all_models = cases.all_models(OPTS.examples)
    MODELS = [m for m in all_models
              if any(OPTS.filter.search(m.run_name(*r)) for r in m.runs)
              or (m.kind == "so" and OPTS.filter.search(m.name + "_errors"))]
    if OPTS.list:  # (prints nothing, successfully, when nothing matches)
        for m in MODELS:
            for r in m.runs:
                if OPTS.filter.search(m.run_name(*r)):
                    print(m.run_name(*r))
        return 0
    if not MODELS and not OPTS.list:
        print("no case matches --filter %r" % OPTS.filter.pattern)
        print("0 passed, 1 failed")
        return 1
    if not OPTS.self_check and not os.access(OPTS.nncc, os.X_OK):
        print("note: %s is not an executable; every case will fail" % OPTS.nncc)

    t0 = time.time()
    # Big models first so that they overlap with the many small ones; print in list order.
    order = sorted(range(len(MODELS)), key=lambda i: -MODELS[i].cost)
    passed = failed = 0
    worst, worst_case = 0.0, None
    slowest = []
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(max(1, OPTS.jobs), maxtasksperchild=8) as pool:
        for i, (results, secs) in zip(order, pool.imap(process_model, order)):
            slowest.append((secs, MODELS[i].name))
            for status, name, detail, err in results:
                print("%s %s  %s" % (status, name, detail), flush=True)
                if status == "PASS":
                    passed += 1
                else:
                    failed += 1
                if err is not None and err >= worst:
                    worst, worst_case = err, name
    elapsed = time.time() - t0
    print("%d passed, %d failed" % (passed, failed))
    print("worst max_rel_err=%.2e%s (tolerance %g); %.1fs; slowest models: %s" % (
        worst, " in " + worst_case if worst_case else "", OPTS.tol, elapsed,
        ", ".join("%s %.1fs" % (n, s) for s, n in sorted(slowest, reverse=True)[:3])))
    return 1 if failed else 0


MODELS = []

if __name__ == "__main__":
    sys.exit(main())
