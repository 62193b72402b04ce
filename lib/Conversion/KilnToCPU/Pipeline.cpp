//===- Pipeline.cpp - kiln to the LLVM dialect ----------------------------===//

#include "Conversion/Passes.h"
#include "Kiln/Transforms/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;
using namespace mlir::kiln;

void mlir::kiln::buildKilnToLLVMPipeline(
    OpPassManager &pm, const KilnToLLVMOptions &options) {
  // The CPU's integer kernels rotate in their epilogue, its f32 ones do not.
  int64_t bits = activationBits(options.activations);
  pm.addPass(createKilnFuse({/*ropeEpilogue=*/bits != 0,
                             /*activationBits=*/bits}));
  pm.addPass(createKilnPlanMemory({options.maxTokens, options.reuseScratch}));
  pm.addPass(createConvertKilnToCPU({options.cpu}));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(createSCFToControlFlowPass());
  ConvertVectorToLLVMPassOptions vectorOptions;
  vectorOptions.reassociateFPReductions = true;
  vectorOptions.x86Vector = true;
  pm.addPass(createConvertVectorToLLVMPass(vectorOptions));
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createUBToLLVMConversionPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createCanonicalizerPass());
}

namespace {
/// kiln-lower-to-llvm's options: KilnToLLVMOptions, spelled as kiln-compile
/// and the passes spell them.
struct KilnToLLVMPipelineOptions
    : public PassPipelineOptions<KilnToLLVMPipelineOptions> {
  Option<int64_t> maxTokens{
      *this, "max-tokens",
      llvm::cl::desc("Bound of dynamic token dimensions (0: each function's "
                     "kiln.max_tokens)"),
      llvm::cl::init(0)};
  Option<ActivationPrecision> activations{
      *this, "activations",
      llvm::cl::desc("Activations of linear layers over integer-coded "
                     "weights"),
      llvm::cl::init(ActivationPrecision::Int8),
      llvm::cl::values(
          clEnumValN(ActivationPrecision::Int8, "int8",
                     "int8 per 32 values, integer dot products"),
          clEnumValN(ActivationPrecision::F32, "f32", "exact"),
          clEnumValN(ActivationPrecision::Int2, "int2", "2-bit codes"),
          clEnumValN(ActivationPrecision::Int3, "int3", "3-bit codes"),
          clEnumValN(ActivationPrecision::Int4, "int4", "4-bit codes"),
          clEnumValN(ActivationPrecision::Int5, "int5", "5-bit codes"),
          clEnumValN(ActivationPrecision::Int6, "int6", "6-bit codes"),
          clEnumValN(ActivationPrecision::Int7, "int7", "7-bit codes"))};
  Option<KernelISA> cpu{
      *this, "cpu", llvm::cl::desc("Instruction set the kernels may use"),
      llvm::cl::init(KernelISA::Generic),
      llvm::cl::values(
          clEnumValN(KernelISA::Generic, "generic", "portable vector code"),
          clEnumValN(KernelISA::X86_64_V3, "x86-64-v3", "AVX2"),
          clEnumValN(KernelISA::X86_64_V4, "x86-64-v4", "AVX-512 VNNI"))};
};
} // namespace

void mlir::kiln::registerKilnPipelines() {
  PassPipelineRegistration<KilnToLLVMPipelineOptions>(
      "kiln-lower-to-llvm",
      "Lower kiln ops to the LLVM dialect through the CPU kernels: kiln-fuse, "
      "kiln-plan-memory, convert-kiln-to-cpu, then upstream to LLVM (what "
      "kiln-compile runs after packing weights)",
      [](OpPassManager &pm, const KilnToLLVMPipelineOptions &options) {
        buildKilnToLLVMPipeline(
            pm, {options.maxTokens, options.activations, options.cpu});
      });
}
