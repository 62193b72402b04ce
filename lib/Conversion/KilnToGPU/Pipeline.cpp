//===- Pipeline.cpp - kiln to PTX/cubin kernels and an LLVM host step -----===//

#include "Conversion/Passes.h"
#include "Kiln/Transforms/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;
using namespace mlir::kiln;

void mlir::kiln::buildKilnToNVVMPipeline(OpPassManager &pm,
                                         const KilnToCUDAOptions &options) {
  // The decode GEMV rotates the query and key projections as it stores them
  // (Linear.cpp), saving a launch each; prefill rotates after the product.
  pm.addPass(createKilnFuse({/*ropeEpilogue=*/true, options.activationBits}));
  pm.addPass(createKilnPlanMemory({options.maxTokens}));
  pm.addPass(createConvertKilnToGPU());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(createSCFToControlFlowPass());
  for (const std::string &chip : options.chips) {
    GpuNVVMAttachTargetOptions target;
    target.chip = chip;
    pm.addPass(createGpuNVVMAttachTarget(target));
  }
  OpPassManager &kernels = pm.nest<gpu::GPUModuleOp>();
  // Bare pointers: a kernel argument is one device pointer, as rt->launch
  // passes it (HostABI.h).
  ConvertGpuOpsToNVVMOpsOptions nvvm;
  nvvm.useBarePtrCallConv = true;
  kernels.addPass(createConvertGpuOpsToNVVMOps(nvvm));
  kernels.addPass(createReconcileUnrealizedCastsPass());
  kernels.addPass(createCanonicalizerPass());
}

void mlir::kiln::buildGPUHostToLLVMPipeline(OpPassManager &pm) {
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createCanonicalizerPass());
}

namespace {
struct KilnToCUDAPipelineOptions
    : public PassPipelineOptions<KilnToCUDAPipelineOptions> {
  Option<int64_t> maxTokens{
      *this, "max-tokens",
      llvm::cl::desc("Bound of dynamic token dimensions (0: each function's "
                     "kiln.max_tokens)"),
      llvm::cl::init(0)};
  Option<int64_t> activationBits{
      *this, "activation-bits",
      llvm::cl::desc("Width the decode GEMVs quantize their input to (2-8, "
                     "as kiln-fuse; 0: f32)"),
      llvm::cl::init(8)};
  ListOption<std::string> chips{
      *this, "chips",
      llvm::cl::desc("GPU architectures to generate code for (default "
                     "sm_90a,sm_80)")};
  Option<std::string> format{
      *this, "format",
      llvm::cl::desc("gpu-module-to-binary's format: isa (PTX), bin (cubin, "
                     "needs ptxas), fatbin"),
      llvm::cl::init("isa")};
  Option<std::string> toolkit{
      *this, "toolkit",
      llvm::cl::desc("CUDA toolkit directory (for format=bin)"),
      llvm::cl::init("")};
};
} // namespace

void mlir::kiln::registerKilnGPUPipelines() {
  PassPipelineRegistration<KilnToCUDAPipelineOptions>(
      "kiln-lower-to-cuda",
      "Lower kiln ops to CUDA: kiln-fuse, kiln-plan-memory, "
      "convert-kiln-to-gpu, convert-gpu-to-nvvm (bare pointers), "
      "gpu-module-to-binary, then the host step to the LLVM dialect (what "
      "kiln-compile --target=cuda runs)",
      [](OpPassManager &pm, const KilnToCUDAPipelineOptions &options) {
        KilnToCUDAOptions cuda;
        cuda.maxTokens = options.maxTokens;
        cuda.activationBits = options.activationBits;
        if (!options.chips.empty())
          cuda.chips.assign(options.chips.begin(), options.chips.end());
        buildKilnToNVVMPipeline(pm, cuda);
        GpuModuleToBinaryPassOptions binary;
        binary.compilationTarget = options.format;
        binary.toolkitPath = options.toolkit;
        pm.addPass(createGpuModuleToBinaryPass(binary));
        buildGPUHostToLLVMPipeline(pm);
      });
}
