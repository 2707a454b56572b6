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
# The oracle's BLAS must not be told it is an older CPU (TOOLCHAIN.md).
config.environment.pop("OPENBLAS_CORETYPE", None)
# %cc compiles C programs that link generated libraries; under the sanitizers they need the
# sanitizer runtimes too (an ASan-instrumented .so must not be loaded by a plain program).
test_cc = "cc -fsanitize=address,undefined" if config.sanitize else "cc"
config.substitutions.append(("%cc", test_cc))
config.environment["CC"] = test_cc
if config.sanitize:
    config.available_features.add("sanitize")
    config.environment["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0"
    config.environment["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
try:
    import subprocess
    subprocess.run([config.torch_python, "-c", "import torch, numpy"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config.available_features.add("torch")
except Exception:
    pass
