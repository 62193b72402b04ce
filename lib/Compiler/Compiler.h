//===- Compiler.h - the pipelines behind kiln-compile -----------*- C++ -*-===//

#ifndef KILN_COMPILER_COMPILER_H
#define KILN_COMPILER_COMPILER_H

#include "Conversion/LoweringOptions.h"

#include "llvm/Support/Error.h"

#include <functional>
#include <string>

namespace kiln {

enum class EmitKind {
  Artifact, // .kiln: manifest, host code per CPU variant, weights, vocab
  KilnMLIR, // the imported module in the kiln dialect
  LLVMMLIR, // the module lowered to the LLVM dialect
  LLVMIR,   // optimized LLVM IR for one CPU variant
  Assembly, // assembly for one CPU variant
  SharedObject, // the host code of one CPU variant
};

struct CompileOptions {
  std::string input;  // .gguf model or .mlir module
  std::string output; // written atomically
  EmitKind emit = EmitKind::Artifact;
  std::string target = "cpu";
  /// CPU variant for the single-variant emit kinds.
  std::string cpuVariant = "x86-64-v4";
  /// Kernels for the single-variant emit kinds: "native" (for cpuVariant's
  /// instruction set) or "generic" (portable vector code, for testing it).
  std::string kernels = "native";
  int64_t contextLength = 0; // 0: min(model context, 4096)
  int64_t maxTokens = 256;
  /// Activations of linear layers over integer-coded weights (see
  /// convert-kiln-to-cpu).
  mlir::kiln::ActivationPrecision activations =
      mlir::kiln::ActivationPrecision::Int8;
  /// For .mlir inputs: where to write the weights the emitted code reads
  /// (repacked for its kernels); empty: the code reads the module's file.
  std::string weightsOutput;
  /// Called with (stage name, fraction done in [0, 1]).
  std::function<void(const std::string &, double)> progress;
};

/// Runs the whole pipeline; errors are one line naming the input and what
/// went wrong. Nothing is written at `output` unless everything succeeded.
llvm::Error compile(const CompileOptions &options);

/// Parses "kiln", "mlir", "llvm-mlir", "llvm", "asm", "so".
bool parseEmitKind(llvm::StringRef text, EmitKind &kind);

} // namespace kiln

#endif // KILN_COMPILER_COMPILER_H
