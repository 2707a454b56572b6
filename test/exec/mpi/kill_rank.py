"""Kills one process of a data-parallel training run and checks that the others stop with an
error instead of waiting forever, and that the weights file is never torn.

    kill_rank.py --mpirun "mpirun ..." --rank R --signal KILL|STOP --dir DIR -- ./model train ...

Starts `mpirun ... sh -c 'echo $$ > DIR/pid.RANK; exec ./model train ...'` (so each process's
pid is known), waits until the first epoch's --save file exists, sends the signal to process
R, and waits for mpirun (at most --limit seconds; then it is killed and the check fails).
SIGKILL is noticed by mpirun; SIGSTOP leaves a process alive but silent, which the trainer's
collective timeout (NNCC_MPI_TIMEOUT) must catch.  Checks: mpirun exits non-zero, in time,
some process said what went wrong, and the --save file (written atomically by process 0
after each epoch) is complete: every tensor readable, all of the expected size.
"""
import argparse
import os
import shlex
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from compare_weights import read  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mpirun", required=True)
    ap.add_argument("--rank", type=int, required=True)
    ap.add_argument("--signal", choices=["KILL", "STOP"], required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--save", required=True, help="the --save file of the command")
    ap.add_argument("--limit", type=float, default=60)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    pidfile = os.path.join(args.dir, "pid.")
    inner = "echo $$ > %s$OMPI_COMM_WORLD_RANK; exec %s" % (shlex.quote(pidfile), shlex.join(cmd))
    full = shlex.split(args.mpirun) + ["sh", "-c", inner]
    log = open(os.path.join(args.dir, "kill.log"), "w+")
    p = subprocess.Popen(full, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    ok = True
    t0 = time.time()
    while not os.path.exists(args.save) and p.poll() is None and time.time() - t0 < args.limit:
        time.sleep(0.05)
    if p.poll() is not None or not os.path.exists(args.save):
        log.seek(0)
        print("FAIL the run ended or never saved before the kill (status %s):\n%s" % (p.poll(), log.read()))
        return 1
    time.sleep(0.3)   # a few steps into the next epoch
    with open(pidfile + str(args.rank)) as f:
        victim = int(f.read())
    os.kill(victim, getattr(signal, "SIG" + args.signal))
    t1 = time.time()
    try:
        status = p.wait(timeout=args.limit)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        status = None
    waited = time.time() - t1
    # a stopped process must not outlive the test
    try:
        os.kill(victim, signal.SIGKILL)
    except ProcessLookupError:
        pass
    log.seek(0)
    out = log.read()
    if status is None:
        print("FAIL mpirun still running %.0f s after SIG%s to process %d (a hang)" % (args.limit, args.signal, args.rank))
        ok = False
    elif status == 0:
        print("FAIL mpirun exited 0 after SIG%s to process %d" % (args.signal, args.rank))
        ok = False
    else:
        print("PASS stopped with status %d, %.1f s after SIG%s to process %d" % (status, waited, args.signal, args.rank))
    try:
        w = read(args.save)
        sizes = {k: v.size for k, v in w.items()}
        print("PASS %s is complete: %d tensors, %d floats" % (os.path.basename(args.save), len(w), sum(sizes.values())))
    except Exception as e:  # noqa: BLE001
        print("FAIL %s is torn: %s" % (args.save, e))
        ok = False
    print("---- output ----")
    print(out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
