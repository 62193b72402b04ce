//===- KilnDialect.h - the kiln dialect ---------------------------*- C++ -*-===//

#ifndef KILN_IR_KILNDIALECT_H
#define KILN_IR_KILNDIALECT_H

#include "Kiln/IR/GGMLFormats.h"

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir::kiln {
class WeightStore;
class WeightLayoutAttrInterface;
} // namespace mlir::kiln

#include "Kiln/IR/KilnDialect.h.inc"
#include "Kiln/IR/KilnEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "Kiln/IR/KilnAttrs.h.inc"

// After the attributes: the interface's methods take a QuantSchemeAttr.
#include "Kiln/IR/KilnAttrInterfaces.h.inc"

#define GET_TYPEDEF_CLASSES
#include "Kiln/IR/KilnTypes.h.inc"

#define GET_OP_CLASSES
#include "Kiln/IR/KilnOps.h.inc"

namespace mlir::kiln {
/// Bytes of one value of a dense weight element type (f8 types: 1).
unsigned getFloatStorageBytes(Type type);

/// The ggml block format (GGMLFormats.h) whose numbers a #kiln.quant scheme
/// has, whatever its layout: an f16 scale and an f16 min (zero) or none.
/// Null if no ggml format has them.
const ::kiln::GGMLFormat *
findGGMLBlockFormat(unsigned bits, unsigned group, Type scaleType,
                    Type zeroType, unsigned superGroup, unsigned subScaleBits,
                    QuantCodebook codebook = QuantCodebook::None);
const ::kiln::GGMLFormat *findGGMLBlockFormat(QuantSchemeAttr scheme);
} // namespace mlir::kiln

#endif // KILN_IR_KILNDIALECT_H
