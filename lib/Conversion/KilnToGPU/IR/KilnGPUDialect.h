//===- KilnGPUDialect.h - the CUDA target's weight layouts ------*- C++ -*-===//

#ifndef KILN_CONVERSION_KILNTOGPU_IR_KILNGPUDIALECT_H
#define KILN_CONVERSION_KILNTOGPU_IR_KILNGPUDIALECT_H

#include "Conversion/KilnToGPU/IR/SplitLayout.h"
#include "Kiln/IR/KilnDialect.h"

#include "mlir/IR/Dialect.h"

#include "Conversion/KilnToGPU/IR/KilnGPUDialect.h.inc"

#define GET_ATTRDEF_CLASSES
#include "Conversion/KilnToGPU/IR/KilnGPUAttrs.h.inc"

namespace mlir::kiln {

/// The split form of the ggml format of `type` (whatever its layout now),
/// or null if it has none (or `type` is sparse).
const SplitFormat *findSplitFormat(WeightType type);

/// Whether `type` is in the split layout (#kiln_gpu.split).
bool isSplit(WeightType type);

} // namespace mlir::kiln

#endif // KILN_CONVERSION_KILNTOGPU_IR_KILNGPUDIALECT_H
