//===- CompilerContext.cpp - the MLIR context the pipelines run in --------===//

#include "Compiler/CompilerContext.h"

#include "Conversion/Passes.h"
#include "Kiln/IR/KilnDialect.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/GPU/GPUToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/NVVM/NVVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"

using namespace mlir;

namespace kiln {

void registerCompilerDialects(MLIRContext &ctx) {
  DialectRegistry registry;
  registerAllDialects(registry);
  registerAllExtensions(registry);
  registry.insert<mlir::kiln::KilnDialect>();
  mlir::kiln::registerKilnCPUTarget(registry);
  mlir::kiln::registerKilnCUDATarget(registry);
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  // The CUDA route serializes kernels (gpu, nvvm ops) to PTX.
  registerGPUDialectTranslation(registry);
  registerNVVMDialectTranslation(registry);
  ctx.appendDialectRegistry(registry);
  ctx.loadAllAvailableDialects();
}

FirstError::FirstError(MLIRContext &ctx, LocationStyle style)
    : handler(&ctx, [this, style](Diagnostic &d) {
        if (d.getSeverity() == DiagnosticSeverity::Error && text.empty()) {
          llvm::raw_string_ostream os(text);
          auto loc = dyn_cast<FileLineColLoc>(d.getLocation());
          if (style == LocationStyle::FileLineCol && loc)
            os << loc.getFilename().getValue() << ":" << loc.getLine() << ":"
               << loc.getColumn() << ": " << d;
          else
            os << d.getLocation() << ": " << d;
        }
        return success();
      }) {}

} // namespace kiln
