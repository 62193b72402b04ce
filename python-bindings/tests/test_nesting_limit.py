"""kiln.compile_mlir on text nested deeper than Kiln's limit (512 levels of
brackets, lib/Compiler/NestingLimit.h) raises KilnError naming where; MLIR's
parser recurses once per level, and 5000 nested modules overflowed the stack
and killed the interpreter (SIGSEGV). Each case runs in a child interpreter,
so a crash fails the test with the signal named instead of ending the session.
"""

import signal
import subprocess
import sys
import textwrap

import pytest

MESSAGE = ("nesting deeper than 512 levels (Kiln's limit; the parser recurses "
           "once per level)")


def run_child(code):
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode < 0:
        pytest.fail("the interpreter died of %s:\n%s" % (
            signal.Signals(-proc.returncode).name, proc.stderr[-3000:]))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.parametrize("levels", [5000, 100000])
def test_too_deep_raises_and_the_interpreter_lives_on(levels):
    out = run_child("""
        import kiln
        try:
            kiln.compile_mlir("module {" * %d + "}" * %d)
        except kiln.KilnError as e:
            print(e)
        print("still here")
    """ % (levels, levels))
    # The 513th '{' is in column 8 * 513 = 4104.
    assert out == "input.mlir:1:4104: %s\nstill here\n" % MESSAGE


def with_loops(count):
    """A kiln function, and a function whose body holds `count` scf.for loops
    in each other (count + 1 levels), one a line from line 6 on. compile_mlir
    lowers and compiles both and returns the kiln one."""
    return "".join([
        "func.func @silu(%x: tensor<?x64xf32>) -> tensor<?x64xf32> "
        "attributes {kiln.max_tokens = 8} {\n",
        "  %y = kiln.silu %x : tensor<?x64xf32>\n",
        "  return %y : tensor<?x64xf32>\n",
        "}\n",
        "func.func @loops(%lb: index) {\n",
    ] + ["scf.for %%i%04d = %%lb to %%lb step %%lb {\n" % i for i in range(count)]
      + ["}\n" * count, "return\n}\n"])


def test_one_level_past_the_limit():
    out = run_child("""
        import kiln
        try:
            kiln.compile_mlir(%r)
        except kiln.KilnError as e:
            print(e)
    """ % with_loops(512))
    # The 512th loop, on line 517, opens level 513.
    assert out == "input.mlir:517:38: %s\n" % MESSAGE


def test_the_limit_compiles_and_runs_in_a_thread_with_a_2mib_stack():
    # 511 loops in a function's body: 512 levels, parsed, verified, lowered
    # and compiled on a thread whose stack is a quarter of the usual 8 MiB
    # (threading.stack_size applies to threads started after it).
    out = run_child("""
        import threading
        import numpy as np
        import kiln
        threading.stack_size(2 << 20)
        x = np.linspace(-4, 4, 3 * 64, dtype=np.float32).reshape(3, 64)
        result = {}
        def compile_and_call():
            result["y"] = kiln.compile_mlir(%r)(x)
        thread = threading.Thread(target=compile_and_call)
        thread.start()
        thread.join()
        xd = x.astype(np.float64)
        want = xd / (1 + np.exp(-xd))
        print(float(np.abs(result["y"] - want).max()) < 1e-5)
    """ % with_loops(511))
    assert out == "True\n"
