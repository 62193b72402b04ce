//===- Views.cpp - tensor views to memref views ---------------------------===//
//
// Slices of whole rows and reshapes are views of their source's buffer: the
// host passes the view's device address, no kernel runs.
//
//===----------------------------------------------------------------------===//

#include "GPUStepLowering.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

using namespace mlir;
using namespace mlir::kiln;

namespace {

SmallVector<OpFoldResult> mappedAll(GPUStepLowering &step,
                                    ArrayRef<OpFoldResult> values) {
  SmallVector<OpFoldResult> out;
  for (OpFoldResult ofr : values)
    out.push_back(isa<Value>(ofr) ? OpFoldResult(step.mapped(cast<Value>(ofr)))
                                  : ofr);
  return out;
}

struct DimLowering : GPUKernelPattern<tensor::DimOp> {
  LogicalResult lower(tensor::DimOp d, GPUStepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    step.bind(d.getResult(), memref::DimOp::create(b, step.mapped(d.getSource()),
                                                   step.mapped(d.getIndex())));
    return success();
  }
};

struct ExtractSliceLowering : GPUKernelPattern<tensor::ExtractSliceOp> {
  LogicalResult lower(tensor::ExtractSliceOp s, GPUStepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    RankedTensorType source = s.getSourceType();
    bool wholeRows = source.getRank() <= 2 && s.hasUnitStride() &&
                     s.getSourceType().getRank() == s.getType().getRank();
    for (int64_t i = 1; wholeRows && i < source.getRank(); ++i)
      wholeRows = getConstantIntValue(s.getMixedOffsets()[i]) == 0 &&
                  getConstantIntValue(s.getMixedSizes()[i]) ==
                      source.getDimSize(i);
    if (!wholeRows)
      return s.emitOpError("the GPU lowering supports slices of whole rows "
                           "with unit strides only");
    SmallVector<OpFoldResult> strides(source.getRank(), b.getIndexAttr(1));
    step.bind(s.getResult(),
              memref::SubViewOp::create(b, step.mapped(s.getSource()),
                                        mappedAll(step, s.getMixedOffsets()),
                                        mappedAll(step, s.getMixedSizes()),
                                        strides));
    return success();
  }
};

struct ExpandShapeLowering : GPUKernelPattern<tensor::ExpandShapeOp> {
  LogicalResult lower(tensor::ExpandShapeOp e, GPUStepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    step.bind(e.getResult(),
              memref::ExpandShapeOp::create(
                  b, e.getResultType().getShape(), step.mapped(e.getSrc()),
                  e.getReassociationIndices(),
                  mappedAll(step, e.getMixedOutputShape())));
    return success();
  }
};

struct CollapseShapeLowering : GPUKernelPattern<tensor::CollapseShapeOp> {
  LogicalResult lower(tensor::CollapseShapeOp c, GPUStepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    step.bind(c.getResult(),
              memref::CollapseShapeOp::create(b, step.mapped(c.getSrc()),
                                              c.getReassociationIndices()));
    return success();
  }
};

} // namespace

void mlir::kiln::populateGPUViewsPatterns(GPUKernelPatterns &patterns) {
  patterns.add<DimLowering, ExtractSliceLowering, ExpandShapeLowering,
               CollapseShapeLowering>();
}
