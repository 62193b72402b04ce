//===- KilnCPUDialect.h - the CPU target's weight layouts -------*- C++ -*-===//

#ifndef KILN_CONVERSION_KILNTOCPU_IR_KILNCPUDIALECT_H
#define KILN_CONVERSION_KILNTOCPU_IR_KILNCPUDIALECT_H

#include "Conversion/KilnToCPU/IR/Rows16.h"
#include "Kiln/IR/KilnDialect.h"

#include "mlir/IR/Dialect.h"

#include "Conversion/KilnToCPU/IR/KilnCPUDialect.h.inc"

#define GET_ATTRDEF_CLASSES
#include "Conversion/KilnToCPU/IR/KilnCPUAttrs.h.inc"

namespace mlir::kiln {

/// Whether `type` is in the rows16 layout (#kiln_cpu.rows16).
bool isRows16(WeightType type);

/// The rows16 form of the ggml block format of `type` (whatever its layout
/// now), or null if it has none.
const Rows16Format *findRows16Format(WeightType type);

/// How a packed form stores a scale or zero of `type` (f16, bf16, f32), if
/// it can.
std::optional<Rows16Float> rows16FloatOf(Type type);

} // namespace mlir::kiln

#endif // KILN_CONVERSION_KILNTOCPU_IR_KILNCPUDIALECT_H
