//===- Views.cpp - tensor views to memref views ---------------------------===//
//
// Slices of whole rows and reshapes are views of their source's buffer:
// no kernel, no memory of their own.
//
//===----------------------------------------------------------------------===//

#include "StepLowering.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

using namespace mlir;
using namespace mlir::kiln;

namespace {

struct DimLowering : KernelCallPattern<tensor::DimOp> {
  LogicalResult lower(tensor::DimOp d, StepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    step.mapping.map(d.getResult(),
                     memref::DimOp::create(b, step.mapped(d.getSource()),
                                           step.mapped(d.getIndex())));
    return success();
  }
};

struct ExtractSliceLowering : KernelCallPattern<tensor::ExtractSliceOp> {
  LogicalResult lower(tensor::ExtractSliceOp s, StepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    // Row ranges only: [offset, 0] [size, full] [1, 1].
    auto srcType = s.getSourceType();
    if (srcType.getRank() > 2 || !s.hasUnitStride())
      return s.emitOpError("the CPU lowering supports slices of whole "
                           "rows with unit strides only");
    for (int64_t i = 1; i < srcType.getRank(); ++i)
      if (!s.isSameAs(s, [](OpFoldResult, OpFoldResult) { return true; }) ||
          getConstantIntValue(s.getMixedOffsets()[i]) != 0 ||
          getConstantIntValue(s.getMixedSizes()[i]) != srcType.getDimSize(i))
        return s.emitOpError("the CPU lowering supports slices of whole "
                             "rows only");
    SmallVector<OpFoldResult> offsets, sizes, strides;
    for (OpFoldResult ofr : s.getMixedOffsets())
      offsets.push_back(
          isa<Value>(ofr) ? OpFoldResult(step.mapped(cast<Value>(ofr))) : ofr);
    for (OpFoldResult ofr : s.getMixedSizes())
      sizes.push_back(
          isa<Value>(ofr) ? OpFoldResult(step.mapped(cast<Value>(ofr))) : ofr);
    strides.assign(srcType.getRank(), b.getIndexAttr(1));
    Value view = memref::SubViewOp::create(b, step.mapped(s.getSource()),
                                           offsets, sizes, strides);
    step.mapping.map(s.getResult(), view);
    return success();
  }
};

struct ExpandShapeLowering : KernelCallPattern<tensor::ExpandShapeOp> {
  LogicalResult lower(tensor::ExpandShapeOp e, StepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    SmallVector<OpFoldResult> shape;
    for (OpFoldResult ofr : e.getMixedOutputShape())
      shape.push_back(
          isa<Value>(ofr) ? OpFoldResult(step.mapped(cast<Value>(ofr))) : ofr);
    step.mapping.map(e.getResult(), memref::ExpandShapeOp::create(
                                        b, e.getResultType().getShape(),
                                        step.mapped(e.getSrc()),
                                        e.getReassociationIndices(), shape));
    return success();
  }
};

struct CollapseShapeLowering : KernelCallPattern<tensor::CollapseShapeOp> {
  LogicalResult lower(tensor::CollapseShapeOp c, StepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    step.mapping.map(c.getResult(), memref::CollapseShapeOp::create(
                                        b, step.mapped(c.getSrc()),
                                        c.getReassociationIndices()));
    return success();
  }
};

} // namespace

void mlir::kiln::populateViewsPatterns(KernelCallPatterns &patterns) {
  patterns.add<DimLowering, ExtractSliceLowering, ExpandShapeLowering,
               CollapseShapeLowering>();
}
