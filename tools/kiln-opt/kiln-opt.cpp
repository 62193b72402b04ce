//===- kiln-opt.cpp - mlir-opt with the kiln dialect and passes -----------===//
//
// MlirOptMain(argc, argv, ...) opens the input itself and hands it straight
// to MLIR's parser; this main opens it (as that function does) so that Kiln's
// nesting limit is checked before the parser sees the text.
//
//===----------------------------------------------------------------------===//

#include "Compiler/NestingLimit.h"
#include "Conversion/Passes.h"
#include "Kiln/IR/KilnDialect.h"
#include "Kiln/Transforms/Passes.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"

#include <cstdio>

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  // gpu-module-to-binary translates kernels (nvvm, gpu) to LLVM IR.
  mlir::registerAllToLLVMIRTranslations(registry);
  mlir::registerAllPasses();
  registry.insert<mlir::kiln::KilnDialect>();
  mlir::kiln::registerKilnCPUTarget(registry);
  mlir::kiln::registerKilnCUDATarget(registry);
  mlir::kiln::registerKilnTransformsPasses();
  mlir::kiln::registerKilnConversionPasses();
  mlir::kiln::registerKilnPipelines();
  mlir::kiln::registerKilnGPUPipelines();
  auto [inputFilename, outputFilename] = mlir::registerAndParseCLIOptions(
      argc, argv, "Kiln optimizer driver\n", registry);
  mlir::MlirOptMainConfig config =
      mlir::MlirOptMainConfig::createFromCLOptions();

  // These read no input (MlirOptMain answers them before looking at it).
  if (config.shouldShowDialects() || config.shouldListPasses())
    return mlir::asMainReturnCode(mlir::MlirOptMain(
        llvm::outs(), llvm::MemoryBuffer::getMemBuffer(""), registry, config));

  if (inputFilename == "-" &&
      llvm::sys::Process::FileDescriptorIsDisplayed(fileno(stdin)))
    llvm::errs() << "(processing input from stdin now, hit ctrl-c/ctrl-d to "
                    "interrupt)\n";
  std::string error;
  std::unique_ptr<llvm::MemoryBuffer> input =
      mlir::openInputFile(inputFilename, &error);
  if (!input) {
    llvm::errs() << error << "\n";
    return EXIT_FAILURE;
  }
  if (llvm::Error e = kiln::checkNestingDepth(*input)) {
    llvm::WithColor::error(llvm::errs(), "kiln-opt")
        << llvm::toString(std::move(e)) << "\n";
    return EXIT_FAILURE;
  }
  std::unique_ptr<llvm::ToolOutputFile> output =
      mlir::openOutputFile(outputFilename, &error);
  if (!output) {
    llvm::errs() << error << "\n";
    return EXIT_FAILURE;
  }
  if (mlir::failed(
          mlir::MlirOptMain(output->os(), std::move(input), registry, config)))
    return EXIT_FAILURE;
  output->keep();
  return EXIT_SUCCESS;
}
