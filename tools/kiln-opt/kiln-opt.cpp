//===- kiln-opt.cpp - mlir-opt with the kiln dialect and passes -----------===//

#include "Conversion/Passes.h"
#include "Kiln/IR/KilnDialect.h"
#include "Kiln/Transforms/Passes.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  mlir::registerAllPasses();
  registry.insert<mlir::kiln::KilnDialect>();
  mlir::kiln::registerKilnTransformsPasses();
  mlir::kiln::registerKilnConversionPasses();
  mlir::kiln::registerKilnPipelines();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "Kiln optimizer driver\n", registry));
}
