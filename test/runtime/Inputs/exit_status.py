"""exit_status.py CMD ARGS...: run CMD, copy its stderr then its stdout to stdout, then print
"exit N" and exit 0, so a lit RUN line can FileCheck a failing command's messages and its
exact exit status (lit's internal shell has no `$?`)."""
import subprocess
import sys

p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
sys.stdout.write(p.stderr.decode(errors="replace"))
sys.stdout.write(p.stdout.decode(errors="replace"))
print("exit %d" % p.returncode)
