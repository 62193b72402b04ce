//===- PackWeights.cpp - weights into the int8 linear kernels' layout -----===//

#include "Kiln/IR/WeightStore.h"
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

/// The kiln.weight `linear` multiplies by, when it is in a ggml block format
/// the int8 kernels read in rows16 and not packed yet.
WeightOp packableWeight(LinearOp linear) {
  auto source = linear.getWeight().getDefiningOp<WeightOp>();
  WeightType type = linear.getWeight().getType();
  QuantSchemeAttr q = type.getQuant();
  if (!source || !q || q.getLayout() != QuantLayout::GGUF ||
      !type.getRows16Format())
    return {};
  return source;
}

/// `type` with layout = rows16 in place of layout = gguf.
WeightType rows16TypeOf(WeightType type) {
  QuantSchemeAttr q = type.getQuant();
  auto rows16 =
      QuantSchemeAttr::get(q.getContext(), q.getBits(), q.getGroup(),
                           q.getScaleType(), q.getZeroType(), q.getSuperGroup(),
                           q.getSubScaleBits(), QuantLayout::Rows16);
  return WeightType::get(type.getContext(), type.getShape(), Type(), rows16,
                         type.getSparsity());
}

/// Packed sources by (source, packed type): kiln.weight ops naming the same
/// bytes share one blob.
using PackedSources = llvm::DenseMap<std::pair<Attribute, Type>, Attribute>;

/// A blob-backed rows16 copy of `source`, created after it.
FailureOr<WeightOp> pack(WeightOp source, PackedSources &packedSources) {
  WeightType type = source.getType(), to = rows16TypeOf(type);
  OpBuilder b(source);
  b.setInsertionPointAfter(source);
  Attribute &made = packedSources[{source.getSource(), to}];
  if (made)
    return WeightOp::create(b, source.getLoc(), to, made);
  FailureOr<ArrayRef<char>> bytes = readWeightBytes(source);
  if (failed(bytes))
    return failure();
  FailureOr<uint64_t> sourceBytes = type.getStorageBytes();
  FailureOr<uint64_t> packedBytes = to.getStorageBytes();
  if (failed(sourceBytes) || failed(packedBytes) ||
      *sourceBytes != bytes->size())
    return source.emitOpError("holds ")
           << bytes->size() << " bytes, not the " << type << " to pack";
  const Rows16Format *format = type.getRows16Format();
  AsmResourceBlob packed = allocateWeightBytes(*packedBytes);
  packRows16(*format, type.getNumRows(), type.getInnerDim(),
             reinterpret_cast<const uint8_t *>(bytes->data()),
             reinterpret_cast<uint8_t *>(packed.getMutableData().data()));
  WeightOp op = createWeight(b, source.getLoc(), to, std::move(packed),
                             (StringRef(format->name) + "_rows16").str());
  made = op.getSource();
  return op;
}

struct PackWeights : mlir::kiln::impl::KilnPackWeightsBase<PackWeights> {
  void runOnOperation() override {
    PackedSources packedSources;
    // One packed weight per weight value, shared by every linear layer over
    // it.
    llvm::DenseMap<Value, Value> packed;
    WalkResult walk = getOperation().walk([&](LinearOp linear) {
      Value weight = linear.getWeight();
      WeightOp source = packableWeight(linear);
      if (!source)
        return WalkResult::advance();
      Value &copy = packed[weight];
      if (!copy) {
        FailureOr<WeightOp> op = pack(source, packedSources);
        if (failed(op))
          return WalkResult::interrupt();
        copy = op->getResult();
      }
      linear.getWeightMutable().assign(copy);
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      return signalPassFailure();
    // An embedding tied to a packed output layer reads the packed copy, so
    // the weights are stored once.
    getOperation().walk([&](EmbeddingOp embedding) {
      if (Value copy = packed.lookup(embedding.getTable()))
        embedding.getTableMutable().assign(copy);
    });
    for (auto [weight, copy] : packed)
      if (weight.use_empty())
        weight.getDefiningOp()->erase();
  }
};

} // namespace

bool mlir::kiln::kilnPackWeightsRepacks(ModuleOp module) {
  return module
      .walk([](LinearOp linear) {
        return packableWeight(linear) ? WalkResult::interrupt()
                                      : WalkResult::advance();
      })
      .wasInterrupted();
}
