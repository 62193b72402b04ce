//===- NestingLimit.h - refuse MLIR text nested too deep --------*- C++ -*-===//
//
// MLIR's parser recurses once per level of nesting (an op's region holding an
// op, an attribute in an array, a type in a type), and so do the verifier and
// the printer: text nested a few thousand levels deep overflows an 8 MiB stack
// and the process dies with SIGSEGV (upstream mlir-opt does too). Every place
// in Kiln that parses MLIR text (kiln-opt, kiln-compile, the C API's
// kiln_compile_mlir) checks it here first, so such input gets an error.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_COMPILER_NESTINGLIMIT_H
#define KILN_COMPILER_NESTINGLIMIT_H

#include "llvm/Support/Error.h"
#include "llvm/Support/MemoryBufferRef.h"

namespace kiln {

/// The deepest bracket nesting Kiln parses. Measured on kiln-opt and
/// kiln-compile (parse, verify, print, lower to LLVM) under `ulimit -s`: the
/// costliest nesting measured (gpu.launch, scf.forall, scf.for) takes 2.9 to
/// 3.4 KiB of stack per level, so 512 levels need at most 1.7 MiB: they fit a
/// 2 MiB thread stack, and an 8 MiB main thread more than four times over.
/// No IR that a compiler or a person writes comes near 512 levels.
constexpr unsigned kMaxNestingDepth = 512;

/// Counts bracket nesting in MLIR text (`{ ( [ <` against `} ) ] >`, except
/// the `>` of `->` and `>=`, outside string literals and `//` comments) and
/// fails with "<buffer name>:<line>:<column>: nesting deeper than 512 levels
/// (...)" at the bracket that passes kMaxNestingDepth. MLIR bytecode is not
/// text and is not checked.
llvm::Error checkNestingDepth(llvm::MemoryBufferRef source);

} // namespace kiln

#endif // KILN_COMPILER_NESTINGLIMIT_H
