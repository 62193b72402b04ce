//===- CudaCodegen.cpp - kiln module to CUDA images and host step ---------===//

#include "Compiler/CudaCodegen.h"

#include "Compiler/CompilerContext.h"
#include "Conversion/Passes.h"
#include "Kiln/IR/KilnDialect.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <cstdlib>

using namespace mlir;

namespace kiln {

namespace {

llvm::Error fail(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

/// Serializes the gpu.module of a copy of `module` into `format` images.
llvm::Error serialize(ModuleOp module, gpu::CompilationTarget format,
                      const std::string &toolkit,
                      std::vector<CudaImage> &images) {
  OwningOpRef<ModuleOp> copy = module.clone();
  FirstError diags(*module.getContext());
  PassManager pm(module.getContext());
  GpuModuleToBinaryPassOptions options;
  options.compilationTarget =
      format == gpu::CompilationTarget::Assembly ? "isa" : "bin";
  options.toolkitPath = toolkit;
  pm.addPass(createGpuModuleToBinaryPass(options));
  if (failed(pm.run(*copy)))
    return fail("generating " + llvm::Twine(options.compilationTarget) +
                " for the kernels failed: " + diags.take("unknown error"));
  for (auto binary : copy->getOps<gpu::BinaryOp>())
    for (Attribute a : binary.getObjects()) {
      auto object = cast<gpu::ObjectAttr>(a);
      auto target = dyn_cast<NVVM::NVVMTargetAttr>(object.getTarget());
      if (!target)
        return fail("the kernels were serialized for a non-NVVM target (a "
                    "compiler bug)");
      images.push_back({format == gpu::CompilationTarget::Assembly ? "ptx"
                                                                   : "cubin",
                        target.getChip().str(),
                        object.getObject().getValue().str()});
    }
  return llvm::Error::success();
}

} // namespace

const std::vector<std::string> &getCudaArchs() {
  // sm_90a (H100/H200) gets its own code; sm_80 PTX runs on every later GPU.
  static const std::vector<std::string> archs = {"sm_90a", "sm_80"};
  return archs;
}

std::string findCudaToolkit() {
  const char *env = std::getenv("KILN_CUDA_PATH");
  std::string root = env ? env : "/usr/local/cuda";
  llvm::SmallString<256> ptxas(root);
  llvm::sys::path::append(ptxas, "bin", "ptxas");
  return llvm::sys::fs::can_execute(ptxas) ? root : std::string();
}

llvm::Expected<CudaCode> lowerToCuda(ModuleOp module, int64_t maxTokens,
                                     int64_t activationBits, bool withCubins) {
  MLIRContext *ctx = module.getContext();
  {
    FirstError diags(*ctx);
    PassManager pm(ctx);
    mlir::kiln::KilnToCUDAOptions options;
    options.maxTokens = maxTokens;
    options.activationBits = activationBits;
    options.chips.assign(getCudaArchs().begin(), getCudaArchs().end());
    mlir::kiln::buildKilnToNVVMPipeline(pm, options);
    if (failed(pm.run(module)))
      return fail("lowering to CUDA failed: " + diags.take("unknown error"));
  }
  CudaCode code;
  auto forward = module.lookupSymbol<func::FuncOp>("forward");
  ArrayAttr names =
      forward ? mlir::kiln::KilnDialect::CudaKernelsAttrHelper(ctx).getAttr(
                    forward)
              : ArrayAttr();
  IntegerAttr scratch =
      forward ? mlir::kiln::KilnDialect::ScratchBytesAttrHelper(ctx).getAttr(
                    forward)
              : IntegerAttr();
  if (!names || !scratch)
    return fail("the lowered module has no forward step with its kernels "
                "and scratch size (a compiler bug)");
  for (Attribute n : names)
    code.kernels.push_back(cast<StringAttr>(n).str());
  code.scratchBytes = scratch.getInt();

  if (auto e = serialize(module, gpu::CompilationTarget::Assembly, "",
                         code.images))
    return std::move(e);
  std::string toolkit = findCudaToolkit();
  if (withCubins && !toolkit.empty())
    if (auto e = serialize(module, gpu::CompilationTarget::Binary, toolkit,
                           code.images))
      return std::move(e);

  // The images are out; the host step alone goes on to LLVM.
  for (auto gpuModule :
       llvm::make_early_inc_range(module.getOps<gpu::GPUModuleOp>()))
    gpuModule.erase();
  module->removeAttr(gpu::GPUDialect::getContainerModuleAttrName());
  FirstError diags(*ctx);
  PassManager pm(ctx);
  mlir::kiln::buildGPUHostToLLVMPipeline(pm);
  if (failed(pm.run(module)))
    return fail("lowering the CUDA host step failed: " +
                diags.take("unknown error"));
  return code;
}

} // namespace kiln
