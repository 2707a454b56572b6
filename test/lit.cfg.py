# lit configuration for nncc.  Substitutions:
#   %nncc       the compiler under test
#   %FileCheck  LLVM 19's FileCheck (never the unversioned one, which may be LLVM 14)
#   %not        LLVM's `not` (inverts an exit status; `not --crash` is never what we want)
#   %python     the Debian interpreter that has torch and numpy (the numerical reference)
#   %examples   the repository's examples/ directory
#   %testbin    helper programs built from test/runtime/*.c
#   %rtdir      the runtime library and headers, as the compiler uses them
#   %cc         the C compiler for test programs (with the sanitizers when the build has them)
#   %objroot    the build directory
#   %valgrind   valgrind (errors fail the command); empty in the sanitizer build, where
#               ASan and UBSan do the checking and valgrind cannot run.  At most 10 guest
#               instructions a translation block: a block of AVX2 masked loads and stores
#               (vmaskmovps: a vector loop's masked last vector) exhausts VEX's temporary
#               storage at the default 50 ("the 'impossible' happened")
import os
import lit.formats

config.name = "nncc"
config.test_format = lit.formats.ShTest(execute_external=True)
config.suffixes = [".nn", ".test"]
config.excludes = ["Inputs", "lit.cfg.py", "lit.site.cfg.py", "conformance", "fuzz-corpus", "train"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.nncc_obj_root, "test")

tools = config.llvm_tools_dir
config.substitutions.append(("%nncc", config.nncc_bin))
config.substitutions.append(("%FileCheck", os.path.join(tools, "FileCheck")))
config.substitutions.append(("%not", os.path.join(tools, "not")))
config.substitutions.append(("%python", config.torch_python))
config.substitutions.append(("%examples", os.path.join(config.nncc_src_root, "examples")))
config.substitutions.append(("%testbin", config.nncc_test_bin))
config.substitutions.append(("%rtdir", config.nncc_runtime_dir))
config.substitutions.append(("%srcroot", config.nncc_src_root))
config.substitutions.append(("%objroot", config.nncc_obj_root))

# Tests see LLVM 19's tools before any unversioned ones.
config.environment["PATH"] = os.pathsep.join([tools, config.environment.get("PATH", "")])
config.environment["NNCC_RUNTIME_DIR"] = config.nncc_runtime_dir
for var in ("HOME", "TMPDIR"):
    if var in os.environ:
        config.environment[var] = os.environ[var]
# Memory from malloc comes filled with 0x5a bytes (glibc; 1.5e16 as a float) and is refilled
# when freed, instead of the zeros a fresh page holds: a buffer read before it is written (the
# padding of a copy, a workspace slot that a kernel forgets to clear) gives wrong numbers in
# every test, not only when an earlier kernel happened to leave data there (for blocks under
# glibc's mmap threshold, 128 KiB at first: a small model's whole workspace).
config.environment["MALLOC_PERTURB_"] = "165"
# The oracle's BLAS must not be told it is an older CPU (TOOLCHAIN.md).
config.environment.pop("OPENBLAS_CORETYPE", None)
# %cc compiles C programs that link generated libraries; under the sanitizers they need the
# sanitizer runtimes too (an ASan-instrumented .so must not be loaded by a plain program).
test_cc = "cc -fsanitize=address,undefined" if config.sanitize else "cc"
config.substitutions.append(("%cc", test_cc))
config.environment["CC"] = test_cc
config.substitutions.append(("%valgrind", "" if config.sanitize else
                              "valgrind -q --error-exitcode=97 --leak-check=no --vex-guest-max-insns=10"))
# the host's architecture (tests of x86's floating-point mode: REQUIRES: x86_64)
import platform
if platform.machine() in ("x86_64", "AMD64"):
    config.available_features.add("x86_64")
if config.sanitize:
    config.available_features.add("sanitize")
    config.environment["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0"
    config.environment["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
# The numeric tests compare with PyTorch (REQUIRES: torch).  A missing reference is a
# failure, never a skip: the feature is always on, so those tests run and fail on the
# ImportError, and lit says why up front.  NNCC_ALLOW_NO_TORCH=1 (for a machine that
# cannot have torch; CI never sets it) turns them into UNSUPPORTED instead.
import subprocess
try:
    subprocess.run([config.torch_python, "-c", "import torch, numpy"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    have_torch = True
except Exception:
    have_torch = False
if have_torch or os.environ.get("NNCC_ALLOW_NO_TORCH") != "1":
    config.available_features.add("torch")
if not have_torch:
    (lit_config.note if os.environ.get("NNCC_ALLOW_NO_TORCH") == "1" else lit_config.warning)(
        "%s cannot import torch and numpy: every numeric test (REQUIRES: torch) %s; "
        "scripts/install-deps.sh installs python3-torch" % (
            config.torch_python, "is skipped (NNCC_ALLOW_NO_TORCH=1)"
            if os.environ.get("NNCC_ALLOW_NO_TORCH") == "1" else "fails"))

# Data-parallel training (nncc --mpi) runs under Open MPI's mpirun, on this machine only:
#   %mpirun  mpirun bounded in time (a hang fails the test), as root when CI is root, more
#            processes than cores allowed, shared memory between the processes and the
#            loopback interface for mpirun's own messages.
#   %mpienv  the environment for a program that initialises MPI without mpirun.
# Under the sanitizers, LeakSanitizer is off in MPI processes (ASan and UBSan stay on): Open
# MPI keeps allocations past MPI_Finalize in components it has unloaded, whose frames cannot
# even be named for a suppression.  The trainer's own frees are leak-checked by the
# single-process tests, which run the same code.
# Like torch, MPI is required (scripts/install-deps.sh installs openmpi-bin and
# libopenmpi-dev): a missing mpirun or libnncc_rt_mpi.a fails the tests that REQUIRE mpi,
# unless NNCC_ALLOW_NO_MPI=1 (then they are UNSUPPORTED).
import shutil
mpi_asan = "detect_leaks=0:abort_on_error=0"
config.substitutions.append(("%mpirun", "timeout 300 mpirun --allow-run-as-root --oversubscribe "
                             "--mca btl self,vader --mca oob_tcp_if_include lo" +
                             (" -x ASAN_OPTIONS=" + mpi_asan if config.sanitize else "")))
config.substitutions.append(("%mpienv", "env ASAN_OPTIONS=" + mpi_asan if config.sanitize else "env"))
have_mpi = shutil.which("mpirun") is not None and os.path.exists(
    os.path.join(config.nncc_runtime_dir, "libnncc_rt_mpi.a"))
if have_mpi or os.environ.get("NNCC_ALLOW_NO_MPI") != "1":
    config.available_features.add("mpi")
if not have_mpi:
    (lit_config.note if os.environ.get("NNCC_ALLOW_NO_MPI") == "1" else lit_config.warning)(
        "no mpirun or no %s/libnncc_rt_mpi.a (nncc built without libopenmpi-dev): the MPI "
        "tests (REQUIRES: mpi) %s; scripts/install-deps.sh installs openmpi-bin and "
        "libopenmpi-dev" % (config.nncc_runtime_dir, "are skipped (NNCC_ALLOW_NO_MPI=1)"
                            if os.environ.get("NNCC_ALLOW_NO_MPI") == "1" else "fail"))
