//===- Compiler.h - the pipelines behind kiln-compile -----------*- C++ -*-===//

#ifndef KILN_COMPILER_COMPILER_H
#define KILN_COMPILER_COMPILER_H

#include "Conversion/LoweringOptions.h"
#include "Kiln/Transforms/PruneOptions.h"
#include "Kiln/Transforms/QuantizeOptions.h"
#include "Kiln/Transforms/WeightPacking.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace kiln {

enum class EmitKind {
  Artifact, // .kiln: manifest, host code per CPU variant, weights, vocab
  Executable, // the artifact appended to the runtime program (kiln-exe-stub)
  KilnMLIR, // the imported module in the kiln dialect
  LLVMMLIR, // the module lowered to the LLVM dialect
  LLVMIR,   // optimized LLVM IR for one CPU variant
  Assembly, // assembly for one CPU variant
  SharedObject, // the host code of one CPU variant
  PTX,          // --target=cuda: the kernels' PTX for the first GPU arch
  GGUF,         // the model as a GGUF file, with the weights --quantize rewrote
};

struct CompileOptions {
  std::string input;  // .gguf model or .mlir module
  std::string output; // written atomically
  /// For EmitKind::Executable: the runtime program the artifact is appended
  /// to (kiln-compile passes the kiln-exe-stub next to itself).
  std::string executableStub;
  EmitKind emit = EmitKind::Artifact;
  std::string target = "cpu";
  /// CPU variant for the single-variant emit kinds.
  std::string cpuVariant = "x86-64-v4";
  /// Kernels for the single-variant emit kinds: "native" (for cpuVariant's
  /// instruction set) or "generic" (portable vector code, for testing it).
  std::string kernels = "native";
  int64_t contextLength = 0; // 0: min(model context, 4096)
  int64_t maxTokens = 256;
  /// For .mlir inputs: the bound of dynamic token sizes the lowering plans
  /// scratch for (0: each function's kiln.max_tokens).
  int64_t mlirMaxTokens = 0;
  /// Activations of linear layers over integer-coded weights (see
  /// convert-kiln-to-cpu).
  mlir::kiln::ActivationPrecision activations =
      mlir::kiln::ActivationPrecision::Int8;
  /// For .mlir inputs: where to write the weights the emitted code reads
  /// (repacked for its kernels); empty: the code reads the module's file.
  std::string weightsOutput;
  /// For .gguf inputs: quantize the float weights of the linear layers
  /// (kiln-quantize) before anything else.
  std::optional<QuantizeOptions> quantize;
  /// For model inputs (--calibration-taps): every intermediate tensor keeps
  /// its own scratch slot and the manifest lists, per distinct input of the
  /// linear layers, where a step leaves it ("taps"), for kiln-run
  /// --collect-stats. Needs activations=f32 (the inputs as the float model
  /// computes them).
  bool calibrationTaps = false;
  /// With int8 activations on the CPU: how Q4_0/Q8_0 weights pruned
  /// unstructured are stored (kiln-pack-weights{unstructured}).
  mlir::kiln::UnstructuredStorage unstructured =
      mlir::kiln::UnstructuredStorage::Auto;
  /// For .gguf inputs: prune the float weights of the linear layers
  /// (kiln-prune) before quantizing them.
  std::optional<PruneOptions> prune;
  /// With `prune`: the statistics file (.kstats) kiln-distill refits the
  /// kept weights with, the model before pruning the teacher.
  std::string distill;
  /// For model inputs: tensor- and pipeline-parallel ranks (kiln-shard);
  /// the artifact then holds a step function per rank.
  int64_t tensorParallel = 1, pipelineParallel = 1;
  /// For decoder inputs on the CPU: the artifact also holds `forward_batch`,
  /// one step over tokens of several sequences (manifest "batch_entry").
  bool batchedStep = false;
  /// Called with (stage name, fraction done in [0, 1]).
  std::function<void(const std::string &, double)> progress;
};

/// Runs the whole pipeline; errors are one line naming the input and what
/// went wrong. Nothing is written at `output` unless everything succeeded.
llvm::Error compile(const CompileOptions &options);

/// What lowerMLIRModule produced besides the lowered module.
struct LoweredMLIR {
  /// With weights: the weights the lowered code reads, each weight the
  /// kernels want in another layout packed for them, every distinct one
  /// once, 64-byte aligned offsets (kiln-compile writes them with
  /// --weights-out, the C API keeps them with its module).
  std::optional<std::string> weights;
};

/// The .mlir route of kiln-compile, shared with the C API: lowers `module`
/// (kiln functions) in place to the LLVM dialect with kernels for
/// options.cpuVariant's instruction set (or generic ones when
/// options.kernels is "generic") and options.activations.
/// `withWeights`: weights are packed for the kernels (kiln-pack-weights),
/// read through the context's WeightStore (a caller that holds a weight
/// file's bytes lends them with WeightStore::provideFile), and gathered into
/// the returned section the module then points at; without, nothing is
/// packed and the code reads the module's weight file as it is.
llvm::Expected<LoweredMLIR> lowerMLIRModule(mlir::ModuleOp module,
                                            const CompileOptions &options,
                                            bool withWeights);

/// Parses the options of an in-memory .mlir compile (the C API's pipeline
/// string): space-separated activations=int8|f32, max-tokens=N (N >= 1, sets
/// mlirMaxTokens), cpu=x86-64-v4|x86-64-v3 (sets cpuVariant; native
/// kernels) or cpu=generic (portable kernels), unstructured=auto|bitmap|dense
/// (sets unstructured). Unknown keys are an error.
llvm::Error parseMLIRPipelineOptions(llvm::StringRef pipeline,
                                     CompileOptions &options);

/// Parses "kiln", "exe", "mlir", "llvm-mlir", "llvm", "asm", "so", "ptx",
/// "gguf".
bool parseEmitKind(llvm::StringRef text, EmitKind &kind);

} // namespace kiln

#endif // KILN_COMPILER_COMPILER_H
