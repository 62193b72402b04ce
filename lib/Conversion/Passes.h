//===- Passes.h - Kiln conversion passes ------------------------*- C++ -*-===//

#ifndef KILN_CONVERSION_PASSES_H
#define KILN_CONVERSION_PASSES_H

#include "Conversion/LoweringOptions.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"

namespace mlir::kiln {

#define GEN_PASS_DECL
#include "Conversion/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "Conversion/Passes.h.inc"

/// The options of the whole lowering to the LLVM dialect.
struct KilnToLLVMOptions {
  /// Bound of dynamic token dimensions (0: each function's kiln.max_tokens).
  int64_t maxTokens = 0;
  ActivationPrecision activations = ActivationPrecision::Int8;
  KernelISA cpu = KernelISA::Generic;
  /// false: every intermediate tensor keeps its own scratch slot (calibration
  /// reads the linear layers' inputs after a step; kiln-plan-memory reuse).
  bool reuseScratch = true;
};

/// Adds the passes from kiln ops to the LLVM dialect: kiln-fuse,
/// kiln-plan-memory, convert-kiln-to-cpu, then the upstream lowering of
/// scf/vector/math/memref/arith/func to LLVM.
void buildKilnToLLVMPipeline(OpPassManager &pm,
                             const KilnToLLVMOptions &options = {});

/// Registers `kiln-lower-to-llvm` (the pipeline above) with the pass registry.
void registerKilnPipelines();

/// Registers what the CPU target adds to kiln IR: its dialect (kiln_cpu, the
/// weight layouts its kernels read) in `registry`, and its weight packer for
/// kiln-pack-weights{target=cpu}. Every tool that parses or packs kiln IR
/// for the CPU calls it (kiln-opt, and registerCompilerDialects for
/// kiln-compile, the C API and Python).
void registerKilnCPUTarget(DialectRegistry &registry);

/// The CUDA target's counterpart: its dialect (kiln_gpu) and its weight
/// packer for kiln-pack-weights{target=cuda}.
void registerKilnCUDATarget(DialectRegistry &registry);

/// The options of the CUDA lowering.
struct KilnToCUDAOptions {
  /// Bound of dynamic token dimensions (0: each function's kiln.max_tokens).
  int64_t maxTokens = 0;
  /// kiln-fuse's activation-bits: decode GEMVs over the split layout take
  /// their input quantized to this width (0: f32).
  int64_t activationBits = 8;
  /// GPU architectures to generate code for, best first.
  SmallVector<std::string> chips = {"sm_90a", "sm_80"};
};

/// Adds the passes from kiln ops to kernels in the NVVM dialect (inside
/// `gpu.module @kiln_kernels`, with an #nvvm.target per chip) and a host step
/// still in func/memref/arith/llvm: kiln-fuse, kiln-plan-memory,
/// convert-kiln-to-gpu, then convert-gpu-to-nvvm with bare pointers.
void buildKilnToNVVMPipeline(OpPassManager &pm,
                             const KilnToCUDAOptions &options = {});

/// Adds the lowering of the host step (everything outside gpu.module and
/// gpu.binary ops) to the LLVM dialect.
void buildGPUHostToLLVMPipeline(OpPassManager &pm);

/// Registers `kiln-lower-to-cuda`: buildKilnToNVVMPipeline,
/// gpu-module-to-binary, buildGPUHostToLLVMPipeline.
void registerKilnGPUPipelines();

} // namespace mlir::kiln

#endif // KILN_CONVERSION_PASSES_H
