//===- PackWeights.cpp - kiln.pack for the int8 linear kernels ------------===//

#include "Kiln/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseMap.h"

namespace mlir::kiln {
#define GEN_PASS_DEF_KILNPACKWEIGHTS
#include "Kiln/Transforms/Passes.h.inc"
} // namespace mlir::kiln

using namespace mlir;
using namespace mlir::kiln;

namespace {

struct PackWeights : mlir::kiln::impl::KilnPackWeightsBase<PackWeights> {
  void runOnOperation() override {
    // One pack per weight, shared by every linear layer over it.
    llvm::DenseMap<Value, Value> packed;
    getOperation().walk([&](LinearOp linear) {
      Value weight = linear.getWeight();
      auto source = weight.getDefiningOp<WeightOp>();
      WeightType type = linear.getWeight().getType();
      QuantSchemeAttr q = type.getQuant();
      if (!source || !q || q.getLayout() != QuantLayout::GGUF ||
          !type.getRows16Format())
        return;
      Value &pack = packed[weight];
      if (!pack) {
        auto rows16 = QuantSchemeAttr::get(
            q.getContext(), q.getBits(), q.getGroup(), q.getScaleType(),
            q.getZeroType(), q.getSuperGroup(), q.getSubScaleBits(),
            QuantLayout::Rows16);
        auto to = WeightType::get(type.getContext(), type.getShape(),
                                  Type(), rows16, type.getSparsity());
        OpBuilder b(source->getContext());
        b.setInsertionPointAfter(source);
        pack = PackOp::create(b, source.getLoc(), to, weight);
      }
      linear.getWeightMutable().assign(pack);
    });
    // An embedding tied to a packed output layer reads the packed copy, so
    // the weights are stored once.
    getOperation().walk([&](EmbeddingOp embedding) {
      if (Value pack = packed.lookup(embedding.getTable()))
        embedding.getTableMutable().assign(pack);
    });
  }
};

} // namespace
