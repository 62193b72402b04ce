"""Prints MLIR text nested LEVELS deep, for nesting-limit.test.

  modules LEVELS   LEVELS builtin.module ops in each other, on one line
                   ('module {' is 8 characters)
  loops LEVELS     a function whose body holds LEVELS - 1 scf.for loops in each
                   other, one a line: among the constructs that take the most
                   stack per level (see lib/Compiler/NestingLimit.h)
  arrows LEVELS    a module attribute of LEVELS - 1 arrays in each other, each
                   holding a function type: its '->' closes nothing
  sets LEVELS      the same with affine sets: their '>=' closes nothing
  uncounted        600 brackets in a comment and in a string literal with an
                   escaped quote: none of them counts
"""
import sys

kind = sys.argv[1]
levels = int(sys.argv[2]) if len(sys.argv) > 2 else 0


def nested_arrays(element):
    arrays = levels - 1  # in the attribute dictionary's '{'
    print("module attributes {test.a = " + ("[%s, " % element) * (arrays - 1) +
          "[%s]" % element + "]" * (arrays - 1) + "} {}")


if kind == "modules":
    print("module {" * levels + "}" * levels)
elif kind == "loops":
    loops = levels - 1
    print("func.func @f(%lb: index) {")
    for i in range(loops):
        print("scf.for %%i%04d = %%lb to %%lb step %%lb {" % i)
    print("}\n" * loops + "return\n}")
elif kind == "arrows":
    nested_arrays("(i32) -> i32")
elif kind == "sets":
    nested_arrays("affine_set<(d0) : (d0 >= 0)>")
elif kind == "uncounted":
    print("// " + "{" * 600)
    print('module attributes {test.s = "\\"' + "[" * 600 + '"} {}')
else:
    sys.exit("unknown kind " + kind)
