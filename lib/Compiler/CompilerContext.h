//===- CompilerContext.h - the MLIR context of the pipelines ----*- C++ -*-===//
//
// What kiln-compile and the C API's kiln_compile_mlir both need before they
// parse or lower a module: every dialect and LLVM IR translation the pipelines
// use, loaded into the context, and the first error diagnostic kept as one
// line for an error message.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_COMPILER_COMPILERCONTEXT_H
#define KILN_COMPILER_COMPILERCONTEXT_H

#include "mlir/IR/Diagnostics.h"
#include "llvm/ADT/StringRef.h"

#include <string>

namespace mlir {
class MLIRContext;
} // namespace mlir

namespace kiln {

/// Registers the upstream dialects and extensions, the kiln dialect, the CPU
/// and CUDA targets' (registerKilnCPUTarget, registerKilnCUDATarget) and the
/// builtin and LLVM dialect
/// translations in `ctx`, and loads them all.
void registerCompilerDialects(mlir::MLIRContext &ctx);

/// Keeps the first error diagnostic reported in a context while it lives, as
/// "<location>: <message>"; every diagnostic is consumed (none is printed).
class FirstError {
public:
  /// How the location of the kept error is written.
  enum class LocationStyle {
    MLIR,        // MLIR's syntax: loc("input.mlir":3:5) (kiln-compile)
    FileLineCol, // a file location as input.mlir:3:5 (the C API)
  };

  explicit FirstError(mlir::MLIRContext &ctx,
                      LocationStyle style = LocationStyle::MLIR);

  /// The kept error, or `fallback` when none was reported.
  std::string take(llvm::StringRef fallback) const {
    return text.empty() ? fallback.str() : text;
  }

private:
  mlir::ScopedDiagnosticHandler handler;
  std::string text;
};

} // namespace kiln

#endif // KILN_COMPILER_COMPILERCONTEXT_H
