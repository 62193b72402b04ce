//===- CUDAWeightPacker.cpp - kiln-pack-weights{target=cuda} --------------===//
//
// The CUDA target's weight packer (Kiln/Transforms/WeightPacking.h): the
// linear layers over a ggml format that has a split form are read by the
// GEMV in #kiln_gpu.split (IR/SplitLayout.h), everything else as it is.
//
//===----------------------------------------------------------------------===//

#include "Conversion/KilnToGPU/IR/KilnGPUDialect.h"
#include "Conversion/Passes.h"
#include "Kiln/Transforms/WeightPacking.h"

#include "mlir/IR/DialectRegistry.h"

using namespace mlir;
using namespace mlir::kiln;

namespace {

class CUDAWeightPacker final : public WeightPacker {
public:
  void getDependentDialects(DialectRegistry &registry) const override {
    registry.insert<KilnGPUDialect>();
  }

  WeightLayoutAttrInterface chooseLayout(WeightType type) const override {
    if (!findSplitFormat(type) || type.getInnerDim() % 32 != 0)
      return nullptr;
    return SplitLayoutAttr::get(type.getContext());
  }

  void pack(WeightType from, WeightType, ArrayRef<uint8_t> source,
            MutableArrayRef<uint8_t> dest) const override {
    packSplit(*findSplitFormat(from), from.getNumRows(), from.getInnerDim(),
              source.data(), dest.data());
  }
};

} // namespace

void mlir::kiln::registerKilnCUDATarget(DialectRegistry &registry) {
  static const CUDAWeightPacker packer{};
  registry.insert<KilnGPUDialect>();
  registerWeightPacker(LoweringTarget::CUDA, packer);
}
