//===- Passes.h - kiln-to-kiln passes ---------------------------*- C++ -*-===//

#ifndef KILN_TRANSFORMS_PASSES_H
#define KILN_TRANSFORMS_PASSES_H

#include "Kiln/IR/KilnDialect.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::kiln {

#define GEN_PASS_DECL
#include "Kiln/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "Kiln/Transforms/Passes.h.inc"

} // namespace mlir::kiln

#endif // KILN_TRANSFORMS_PASSES_H
