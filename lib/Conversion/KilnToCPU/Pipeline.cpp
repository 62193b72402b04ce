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
  pm.addPass(createKilnFuse());
  pm.addPass(createKilnPlanMemory({options.maxTokens}));
  pm.addPass(createConvertKilnToCPU({options.activations, options.cpu}));
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

void mlir::kiln::registerKilnPipelines() {
  PassPipelineRegistration<>(
      "kiln-lower-to-llvm",
      "Lower kiln ops to the LLVM dialect through the CPU kernels (int8 "
      "activations)",
      [](OpPassManager &pm) { buildKilnToLLVMPipeline(pm); });
  PassPipelineRegistration<>(
      "kiln-lower-to-llvm-f32",
      "Lower kiln ops to the LLVM dialect through the CPU kernels (f32 "
      "activations)",
      [](OpPassManager &pm) {
        KilnToLLVMOptions options;
        options.activations = ActivationPrecision::F32;
        buildKilnToLLVMPipeline(pm, options);
      });
}
