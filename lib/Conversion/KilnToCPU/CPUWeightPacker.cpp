//===- CPUWeightPacker.cpp - kiln-pack-weights{target=cpu} ----------------===//
//
// The CPU target's weight packer (Kiln/Transforms/WeightPacking.h): the
// linear layers over a ggml format or Kiln's packed layout that has a rows16
// form are read by the int8 kernels in #kiln_cpu.rows16 (IR/Rows16.h),
// everything else as it is.
//
//===----------------------------------------------------------------------===//

#include "Conversion/KilnToCPU/IR/KilnCPUDialect.h"
#include "Conversion/Passes.h"
#include "Kiln/Transforms/WeightPacking.h"

#include "mlir/IR/DialectRegistry.h"

using namespace mlir;
using namespace mlir::kiln;

namespace {

class CPUWeightPacker final : public WeightPacker {
public:
  void getDependentDialects(DialectRegistry &registry) const override {
    registry.insert<KilnCPUDialect>();
  }

  WeightLayoutAttrInterface chooseLayout(WeightType type) const override {
    QuantSchemeAttr q = type.getQuant();
    if (!q || !findRows16Format(type))
      return nullptr;
    // rows16 kernels write whole groups of 16 rows: Kiln's packed layers of
    // other widths (a classifier's 10 classes) keep the row-at-a-time
    // kernels, which ggml's blocks have only in f32.
    if (q.getLayout() == QuantLayout::Packed &&
        type.getNumRows() % kRows16 != 0)
      return nullptr;
    return Rows16LayoutAttr::get(type.getContext());
  }

  void pack(WeightType from, WeightType, ArrayRef<uint8_t> source,
            MutableArrayRef<uint8_t> dest) const override {
    packRows16(*findRows16Format(from), from.getNumRows(), from.getInnerDim(),
               source.data(), dest.data());
  }
};

} // namespace

void mlir::kiln::registerKilnCPUTarget(DialectRegistry &registry) {
  static const CPUWeightPacker packer{};
  registry.insert<KilnCPUDialect>();
  registerWeightPacker(LoweringTarget::CPU, packer);
}
