//===- PackWeights.cpp - weights into a target's kernel layout ------------===//

#include "Kiln/IR/WeightStore.h"
#include "Kiln/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/DenseMap.h"

namespace mlir::kiln {
#define GEN_PASS_DEF_KILNPACKWEIGHTS
#include "Kiln/Transforms/Passes.h.inc"
} // namespace mlir::kiln

using namespace mlir;
using namespace mlir::kiln;

namespace {

/// A weight to pack and the layout it goes into.
struct Packable {
  WeightOp source;
  WeightLayoutAttrInterface layout;
};

/// The kiln.weight `linear` multiplies by, with the layout `packer` wants it
/// in, when it is quantized, in no target layout yet and the target wants
/// one.
std::optional<Packable> packableWeight(LinearOp linear,
                                       const WeightPacker &packer) {
  auto source = linear.getWeight().getDefiningOp<WeightOp>();
  WeightType type = linear.getWeight().getType();
  QuantSchemeAttr q = type.getQuant();
  if (!source || !q || q.getTargetLayout())
    return std::nullopt;
  WeightLayoutAttrInterface layout = packer.chooseLayout(type);
  if (!layout)
    return std::nullopt;
  return Packable{source, layout};
}

/// `type` with `layout` as its target layout.
WeightType withTargetLayout(WeightType type,
                            WeightLayoutAttrInterface layout) {
  QuantSchemeAttr q = type.getQuant();
  auto scheme = QuantSchemeAttr::get(
      q.getContext(), q.getBits(), q.getGroup(), q.getScaleType(),
      q.getZeroType(), q.getSuperGroup(), q.getSubScaleBits(), q.getLayout(),
      layout);
  return WeightType::get(type.getContext(), type.getShape(), Type(), scheme,
                         type.getSparsity());
}

/// The packed blob's name: the ggml format (if the scheme is one) and the
/// layout, e.g. "q4_0_<layout>".
std::string blobNameOf(WeightType packed) {
  QuantSchemeAttr q = packed.getQuant();
  const ::kiln::GGMLFormat *ggml = findGGMLBlockFormat(q);
  std::string format = ggml ? StringRef(ggml->name).lower() : "weight";
  return format + "_" + q.getTargetLayout().getLayoutName().str();
}

/// Packed sources by (source, packed type): kiln.weight ops naming the same
/// bytes share one blob.
using PackedSources = llvm::DenseMap<std::pair<Attribute, Type>, Attribute>;

/// A blob-backed copy of `what.source` in `what.layout`, created after it.
FailureOr<WeightOp> pack(const Packable &what, const WeightPacker &packer,
                         PackedSources &packedSources) {
  WeightOp source = what.source;
  WeightType type = source.getType(), to = withTargetLayout(type, what.layout);
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
  AsmResourceBlob packed = allocateWeightBytes(*packedBytes);
  MutableArrayRef<char> dest = packed.getMutableData();
  packer.pack(type, to,
              ArrayRef<uint8_t>(reinterpret_cast<const uint8_t *>(bytes->data()),
                                bytes->size()),
              MutableArrayRef<uint8_t>(reinterpret_cast<uint8_t *>(dest.data()),
                                       dest.size()));
  WeightOp op = createWeight(b, source.getLoc(), to, std::move(packed),
                             blobNameOf(to));
  made = op.getSource();
  return op;
}

struct PackWeights : mlir::kiln::impl::KilnPackWeightsBase<PackWeights> {
  using Base::Base;

  void getDependentDialects(DialectRegistry &registry) const override {
    Base::getDependentDialects(registry);
    if (const WeightPacker *packer = lookupWeightPacker(target))
      packer->getDependentDialects(registry);
  }

  void runOnOperation() override {
    const WeightPacker *packer = lookupWeightPacker(target);
    if (!packer) {
      getOperation().emitError("kiln-pack-weights: target ")
          << stringify(LoweringTarget(target))
          << " has no weight packer in this tool";
      return signalPassFailure();
    }
    PackedSources packedSources;
    // One packed weight per weight value, shared by every linear layer over
    // it.
    llvm::DenseMap<Value, Value> packed;
    WalkResult walk = getOperation().walk([&](LinearOp linear) {
      Value weight = linear.getWeight();
      std::optional<Packable> what = packableWeight(linear, *packer);
      if (!what)
        return WalkResult::advance();
      Value &copy = packed[weight];
      if (!copy) {
        FailureOr<WeightOp> op = pack(*what, *packer, packedSources);
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

bool mlir::kiln::kilnPackWeightsRepacks(ModuleOp module,
                                        LoweringTarget target) {
  const WeightPacker *packer = lookupWeightPacker(target);
  if (!packer)
    return false;
  // chooseLayout makes the target's attributes; outside a pass nothing
  // loaded their dialects.
  DialectRegistry registry;
  packer->getDependentDialects(registry);
  MLIRContext *ctx = module.getContext();
  ctx->appendDialectRegistry(registry);
  for (StringRef name : registry.getDialectNames())
    ctx->getOrLoadDialect(name);
  return module
      .walk([&](LinearOp linear) {
        return packableWeight(linear, *packer) ? WalkResult::interrupt()
                                               : WalkResult::advance();
      })
      .wasInterrupted();
}
