//===- Shard.cpp - one step function per rank of a distributed model ------===//
//
// See the pass description in Passes.td. Pipeline stages cut the residual
// stream where a layer starts: the value the first norm of that layer's
// attention block reads. Tensor parallelism rewrites each rank's copy of
// the layers in place: its slices of the weights (new blobs in the weight
// store), the narrower activations and head counts, a KV cache of its heads
// only, and an all-reduce after each row-split projection.
//
//===----------------------------------------------------------------------===//

#include "Kiln/IR/WeightStore.h"
#include "Kiln/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"

#include <algorithm>
#include <cstring>
#include <tuple>

namespace mlir::kiln {
#define GEN_PASS_DEF_KILNSHARD
#include "Kiln/Transforms/Passes.h.inc"
} // namespace mlir::kiln

using namespace mlir;
using namespace mlir::kiln;

namespace {

/// The hidden state layer `attention` reads: follow its query back through
/// projections, ropes, per-head norms and reshapes to the [T, D] norm input.
FailureOr<Value> layerInput(AttentionOp attention) {
  Value v = attention.getQuery();
  while (Operation *def = v.getDefiningOp()) {
    if (isa<RMSNormOp, LayerNormOp>(def) &&
        cast<RankedTensorType>(def->getOperand(0).getType()).getRank() == 2)
      return def->getOperand(0);
    if (def->getNumOperands() == 0)
      break;
    v = def->getOperand(0);
  }
  return attention.emitOpError("kiln-shard cannot find the hidden state "
                               "this layer's attention block starts from");
}

/// Erases the ops of `fn` that nothing returned or sent depends on: the
/// other stages' layers (their attention ops write the KV cache, so dead
/// code elimination would keep them).
void eraseUnneeded(func::FuncOp fn) {
  Block &body = fn.getBody().front();
  llvm::DenseSet<Operation *> needed;
  for (Operation &op : llvm::reverse(body)) {
    bool use = op.hasTrait<OpTrait::IsTerminator>() || isa<SendOp>(op) ||
               llvm::any_of(op.getUsers(),
                            [&](Operation *u) { return needed.contains(u); });
    if (use)
      needed.insert(&op);
  }
  for (Operation &op : llvm::make_early_inc_range(llvm::reverse(body)))
    if (!needed.contains(&op))
      op.erase();
}

/// [begin, end) of `total` units for rank `rank` of `ranks`, as even as
/// whole units allow.
std::pair<int64_t, int64_t> shareOf(int64_t total, int64_t rank,
                                    int64_t ranks) {
  return {rank * total / ranks, (rank + 1) * total / ranks};
}

/// Bytes of the first `k` values of a row of `type` (its encoding).
FailureOr<uint64_t> prefixBytes(WeightType type, int64_t k) {
  if (k == 0)
    return uint64_t(0);
  auto prefix = WeightType::get(type.getContext(), ArrayRef<int64_t>{k},
                                type.getElementType(), type.getQuant(),
                                SparsityAttr());
  return prefix.getRowBytes();
}

/// A kiln.weight (a blob) holding rows [r0, r1) and values [k0, k1) of each
/// row of `weight` (a vector is one row), built before `user`.
FailureOr<Value> sliceWeight(Value weight, int64_t r0, int64_t r1, int64_t k0,
                             int64_t k1, Operation *user) {
  auto op = weight.getDefiningOp<WeightOp>();
  if (!op)
    return user->emitOpError("kiln-shard needs its weights from kiln.weight "
                             "ops");
  WeightType type = op.getType();
  QuantSchemeAttr quant = type.getQuant();
  int64_t k = type.getInnerDim();
  bool vector = type.getRank() == 1;
  if (type.getSparsity() || type.getRank() > 2 ||
      (quant && quant.getTargetLayout()))
    return op.emitOpError("kiln-shard slices dense or block-quantized "
                          "vectors and matrices (before kiln-pack-weights), "
                          "got ")
           << type;
  int64_t block = quant ? quant.getBlockSize() : 1;
  if (k0 % block || (k1 != k && k1 % block))
    return op.emitOpError("cannot split K = ")
           << k << " at " << k0 << ".." << k1 << ": blocks of " << block
           << " values";
  FailureOr<uint64_t> rowBytes = type.getRowBytes(),
                      begin = prefixBytes(type, k0),
                      end = prefixBytes(type, k1);
  FailureOr<ArrayRef<char>> bytes = readWeightBytes(op);
  if (failed(rowBytes) || failed(begin) || failed(end) || failed(bytes))
    return failure();
  SmallVector<int64_t> shape =
      vector ? SmallVector<int64_t>{k1 - k0}
             : SmallVector<int64_t>{r1 - r0, k1 - k0};
  auto sliced = WeightType::get(type.getContext(), shape,
                                type.getElementType(), quant, SparsityAttr());
  uint64_t width = *end - *begin;
  int64_t rows = vector ? 1 : r1 - r0;
  AsmResourceBlob blob = allocateWeightBytes(width * rows);
  char *out = blob.getMutableData().data();
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(out + r * width,
                bytes->data() + (r0 + r) * *rowBytes + *begin, width);
  OpBuilder b(user);
  std::string name = "shard";
  if (auto loc = dyn_cast<NameLoc>(op.getLoc()))
    name = loc.getName().str();
  return createWeight(b, op.getLoc(), sliced, std::move(blob), name)
      .getResult();
}

RankedTensorType withWidth(Value v, int64_t width) {
  auto type = cast<RankedTensorType>(v.getType());
  SmallVector<int64_t> shape(type.getShape());
  shape.back() = width;
  return RankedTensorType::get(shape, type.getElementType());
}

/// Replaces the weight (rows [r0, r1), values [k0, k1)) and bias (rows) of
/// `linear` by their slices and narrows its result to its rows.
LogicalResult sliceLinear(LinearOp linear, int64_t r0, int64_t r1, int64_t k0,
                          int64_t k1) {
  if (linear.getResidual() || linear.getRopeAttr())
    return linear.emitOpError("kiln-shard runs before kiln-fuse");
  FailureOr<Value> w =
      sliceWeight(linear.getWeight(), r0, r1, k0, k1, linear);
  if (failed(w))
    return failure();
  linear.getWeightMutable().assign(*w);
  if (Value bias = linear.getBias()) {
    FailureOr<Value> b = sliceWeight(bias, 0, 1, r0, r1, linear);
    if (failed(b))
      return failure();
    linear.getBiasMutable().assign(*b);
  }
  linear.getResult().setType(withWidth(linear.getResult(), r1 - r0));
  return success();
}

/// `value` summed over the group: an all-reduce after it that its other
/// users read.
void allReduceAfter(Value value) {
  OpBuilder b(value.getContext());
  b.setInsertionPointAfterValue(value);
  auto sum = AllReduceOp::create(b, value.getLoc(), value.getType(), value);
  value.replaceAllUsesExcept(sum.getResult(), sum);
}

/// A projection feeding attention and the ops between: rope, and Gemma's
/// per-head norm with the reshapes around it (in order from the linear).
struct Projection {
  LinearOp linear;
  SmallVector<Operation *> chain;
};

/// Whether `v` feeds one op, not counting the tensor.dim ops that read its
/// row count for a reshape (Gemma's per-head norms): narrowing the columns
/// leaves those valid.
bool hasOneConsumer(Value v) {
  return llvm::count_if(v.getUsers(), [](Operation *user) {
           return !isa<tensor::DimOp>(user);
         }) == 1;
}

FailureOr<Projection> projectionOf(Value v) {
  Projection p;
  while (Operation *def = v.getDefiningOp()) {
    if (!hasOneConsumer(def->getResult(0)))
      break;
    if (auto linear = dyn_cast<LinearOp>(def)) {
      p.linear = linear;
      std::reverse(p.chain.begin(), p.chain.end());
      return p;
    }
    if (!isa<RopeOp, RMSNormOp, tensor::ExpandShapeOp,
             tensor::CollapseShapeOp>(def))
      break;
    p.chain.push_back(def);
    v = def->getOperand(0);
  }
  return failure();
}

/// Gives the ops after a projection narrowed to `heads` heads of `hd` their
/// new types (and ropes their head count).
void narrowChain(Projection &p, int64_t heads, int64_t hd) {
  for (Operation *&op : p.chain) {
    Value input = op->getOperand(0);
    if (auto expand = dyn_cast<tensor::ExpandShapeOp>(op)) {
      RankedTensorType old = expand.getResultType();
      auto type = RankedTensorType::get({old.getDimSize(0), heads, hd},
                                        old.getElementType());
      SmallVector<OpFoldResult> shape = expand.getMixedOutputShape();
      OpBuilder b(expand);
      shape[1] = b.getIndexAttr(heads);
      auto narrow = tensor::ExpandShapeOp::create(
          b, expand.getLoc(), type, input, expand.getReassociationIndices(),
          shape);
      expand.getResult().replaceAllUsesWith(narrow.getResult());
      expand.erase();
      op = narrow;
      continue;
    }
    if (auto collapse = dyn_cast<tensor::CollapseShapeOp>(op)) {
      collapse.getResult().setType(withWidth(collapse.getResult(), heads * hd));
      continue;
    }
    if (auto rope = dyn_cast<RopeOp>(op))
      rope.setNumHeadsAttr(OpBuilder(op).getI64IntegerAttr(heads));
    op->getResult(0).setType(input.getType());
  }
}

/// One attention block's ops, as the importers build them.
struct AttentionBlock {
  Projection q, k, v;
  LinearOp o;
  AttentionOp attention;
};
struct MLPBlock {
  LinearOp gate, up, down;
  Operation *glu;
};

FailureOr<AttentionBlock> matchAttention(AttentionOp a) {
  AttentionBlock m;
  m.attention = a;
  FailureOr<Projection> q = projectionOf(a.getQuery()),
                        k = projectionOf(a.getKey()),
                        v = projectionOf(a.getValue());
  if (a.getResult().hasOneUse())
    m.o = dyn_cast<LinearOp>(*a.getResult().getUsers().begin());
  if (failed(q) || failed(k) || failed(v) || !m.o ||
      m.o.getInput() != a.getResult())
    return a.emitOpError("kiln-shard splits heads of attention blocks "
                         "whose queries, keys and values each come from a "
                         "linear layer (through ropes and per-head norms) "
                         "and whose result feeds one output projection");
  m.q = *q;
  m.k = *k;
  m.v = *v;
  if (m.o.getBias())
    return m.o.emitOpError("kiln-shard cannot split an output projection "
                           "with a bias (every rank would add it)");
  return m;
}

FailureOr<MLPBlock> matchMLP(Operation *glu) {
  MLPBlock m;
  m.glu = glu;
  m.gate = glu->getOperand(0).getDefiningOp<LinearOp>();
  m.up = glu->getOperand(1).getDefiningOp<LinearOp>();
  if (glu->getResult(0).hasOneUse())
    m.down = dyn_cast<LinearOp>(*glu->getResult(0).getUsers().begin());
  if (!m.gate || !m.up || !m.down || !m.gate.getResult().hasOneUse() ||
      !m.up.getResult().hasOneUse())
    return glu->emitOpError("kiln-shard splits gated MLPs of the form "
                            "down(glu(gate(x), up(x))) only");
  if (m.down.getBias())
    return m.down.emitOpError("kiln-shard cannot split a down projection "
                              "with a bias (every rank would add it)");
  return m;
}

/// Rank `rank` of `ranks` in `fn`: its heads (whole KV groups) and its
/// share of the MLP's hidden units.
LogicalResult splitTensors(func::FuncOp fn, int64_t rank, int64_t ranks) {
  SmallVector<AttentionBlock> attention;
  SmallVector<MLPBlock> mlps;
  WalkResult walk = fn.walk([&](Operation *op) {
    if (auto a = dyn_cast<AttentionOp>(op)) {
      FailureOr<AttentionBlock> m = matchAttention(a);
      if (failed(m))
        return WalkResult::interrupt();
      attention.push_back(*m);
    } else if (isa<SwiGLUOp, GeGLUOp>(op)) {
      FailureOr<MLPBlock> m = matchMLP(op);
      if (failed(m))
        return WalkResult::interrupt();
      mlps.push_back(*m);
    }
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return failure();

  // The KV cache keeps this rank's heads only; a single KV head (MQA) is
  // computed by every rank, which then splits the query heads.
  bool splitKV = true;
  for (BlockArgument arg : fn.getArguments()) {
    auto cache = dyn_cast<KVCacheType>(arg.getType());
    if (!cache)
      continue;
    int64_t kvHeads = cache.getKvHeads();
    splitKV = kvHeads > 1;
    if (!splitKV)
      continue;
    if (kvHeads < ranks)
      return fn.emitOpError("has ")
             << kvHeads << " KV heads: too few to split over " << ranks
             << " tensor-parallel ranks";
    auto [kv0, kv1] = shareOf(kvHeads, rank, ranks);
    arg.setType(KVCacheType::get(fn.getContext(), cache.getLayers(),
                                 cache.getContextLength(), kv1 - kv0,
                                 cache.getHeadDim(), cache.getElementType()));
  }
  fn.setFunctionType(FunctionType::get(fn.getContext(),
                                       fn.getBody().getArgumentTypes(),
                                       fn.getResultTypes()));

  for (AttentionBlock &m : attention) {
    auto cache = cast<KVCacheType>(m.attention.getCache().getType());
    int64_t hd = cache.getHeadDim();
    int64_t heads = m.attention.getNumHeads();
    int64_t kvWidth =
        cast<RankedTensorType>(m.attention.getKey().getType()).getDimSize(1);
    if (kvWidth % hd != 0 || heads % (kvWidth / hd) != 0)
      return m.attention.emitOpError("kiln-shard cannot group ")
             << heads << " query heads over " << kvWidth / hd << " KV heads";
    int64_t kvHeads = kvWidth / hd, group = heads / kvHeads;
    int64_t k = m.q.linear.getWeight().getType().getInnerDim();
    int64_t q0, q1;
    if (splitKV) {
      auto [kv0, kv1] = shareOf(kvHeads, rank, ranks);
      q0 = kv0 * group;
      q1 = kv1 * group;
      if (failed(sliceLinear(m.k.linear, kv0 * hd, kv1 * hd, 0, k)) ||
          failed(sliceLinear(m.v.linear, kv0 * hd, kv1 * hd, 0, k)))
        return failure();
      narrowChain(m.k, kv1 - kv0, hd);
      narrowChain(m.v, kv1 - kv0, hd);
    } else {
      if (heads < ranks)
        return m.attention.emitOpError("has ")
               << heads << " query heads: too few to split over " << ranks
               << " tensor-parallel ranks";
      std::tie(q0, q1) = shareOf(heads, rank, ranks);
    }
    if (failed(sliceLinear(m.q.linear, q0 * hd, q1 * hd, 0, k)))
      return failure();
    narrowChain(m.q, q1 - q0, hd);
    OpBuilder b(fn.getContext());
    m.attention.setNumHeadsAttr(b.getI64IntegerAttr(q1 - q0));
    m.attention.getResult().setType(m.attention.getQuery().getType());
    int64_t n = m.o.getWeight().getType().getShape().front();
    if (failed(sliceLinear(m.o, 0, n, q0 * hd, q1 * hd)))
      return failure();
    allReduceAfter(m.o.getResult());
  }
  for (MLPBlock &m : mlps) {
    WeightType down = m.down.getWeight().getType();
    QuantSchemeAttr quant = down.getQuant();
    int64_t block = quant ? quant.getBlockSize() : 1;
    int64_t hidden = down.getInnerDim();
    if (hidden % block != 0 || hidden / block < ranks)
      return m.down.emitOpError("cannot split ")
             << hidden << " hidden units in blocks of " << block << " over "
             << ranks << " ranks";
    auto [b0, b1] = shareOf(hidden / block, rank, ranks);
    int64_t f0 = b0 * block, f1 = b1 * block;
    int64_t k = m.gate.getWeight().getType().getInnerDim();
    if (failed(sliceLinear(m.gate, f0, f1, 0, k)) ||
        failed(sliceLinear(m.up, f0, f1, 0, k)))
      return failure();
    m.glu->getResult(0).setType(m.gate.getResult().getType());
    int64_t n = down.getShape().front();
    if (failed(sliceLinear(m.down, 0, n, f0, f1)))
      return failure();
    allReduceAfter(m.down.getResult());
  }
  // The whole weights the slices replaced.
  for (Operation &op : llvm::make_early_inc_range(fn.getBody().front()))
    if (isa<WeightOp>(op) && op.use_empty())
      op.erase();
  return success();
}

struct Shard : mlir::kiln::impl::KilnShardBase<Shard> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (tp < 1 || pp < 1 || dp < 1) {
      module.emitError("kiln-shard: tp, pp and dp must be >= 1, got tp=")
          << int64_t(tp) << " pp=" << int64_t(pp) << " dp=" << int64_t(dp);
      return signalPassFailure();
    }
    if (tp == 1 && pp == 1)
      return;
    auto forward = module.lookupSymbol<func::FuncOp>("forward");
    if (!forward || !KilnDialect::isStepFunction(forward)) {
      module.emitError("kiln-shard needs a step function named 'forward'");
      return signalPassFailure();
    }
    // Tensor parallelism first, then each TP rank's function is cut into
    // stages: group rank stage * tp + t runs TP rank t's share of stage
    // `stage`, and exchanges hidden states with TP rank t of the
    // neighbouring stages.
    if (tp == 1) {
      if (failed(splitPipeline(module, forward, 0)))
        signalPassFailure();
      return;
    }
    OpBuilder b(module.getContext());
    b.setInsertionPoint(forward);
    for (int64_t t = 0; t < tp; ++t) {
      auto share = cast<func::FuncOp>(b.clone(*forward));
      share.setSymName(((pp > 1 ? "forward_tp" : "forward_rank") + Twine(t))
                           .str());
      if (failed(splitTensors(share, t, tp)) ||
          (pp > 1 && failed(splitPipeline(module, share, t))))
        return signalPassFailure();
    }
    forward.erase();
  }

  /// Group rank of TP rank `t` of pipeline stage `stage`.
  int64_t rankOf(int64_t stage, int64_t t) { return stage * tp + t; }

  /// Cuts `forward` (TP rank `t`'s function, or the whole model) into pp
  /// stages and erases it.
  LogicalResult splitPipeline(ModuleOp module, func::FuncOp forward,
                              int64_t t) {
    SmallVector<AttentionOp> layers;
    forward.walk([&](AttentionOp a) { layers.push_back(a); });
    int64_t nLayers = layers.size();
    if (pp > nLayers)
      return forward.emitOpError("has ")
             << nLayers << " layers: too few for " << int64_t(pp)
             << " pipeline stages";
    auto tied = forward->getAttrOfType<ArrayAttr>(
        KilnDialect::TiedResultsAttrHelper::getNameStr());
    auto ret = cast<func::ReturnOp>(forward.getBody().front().getTerminator());
    SmallVector<int64_t> logitArgs;
    for (unsigned i = 0; i < ret.getNumOperands(); ++i) {
      auto arg = tied && i < tied.size() ? dyn_cast<IntegerAttr>(tied[i])
                                         : IntegerAttr();
      if (!arg || arg.getInt() < 0)
        return forward.emitOpError("kiln-shard needs each result tied to "
                                   "an argument (kiln.tied_results): the "
                                   "stages receive results into it");
      logitArgs.push_back(arg.getInt());
    }
    // cuts[s]: the hidden state entering stage s (s >= 1).
    SmallVector<Value> cuts(pp);
    for (int64_t s = 1; s < pp; ++s) {
      FailureOr<Value> input = layerInput(layers[s * nLayers / pp]);
      if (failed(input))
        return failure();
      cuts[s] = *input;
    }
    OpBuilder b(module.getContext());
    b.setInsertionPoint(forward);
    for (int64_t s = 0; s < pp; ++s) {
      IRMapping map;
      auto stage = cast<func::FuncOp>(b.clone(*forward, map));
      stage.setSymName(("forward_rank" + Twine(rankOf(s, t))).str());
      Block &body = stage.getBody().front();
      auto stageRet = cast<func::ReturnOp>(body.getTerminator());
      Location loc = stage.getLoc();
      Value tokens = body.getArgument(0);
      if (s > 0) {
        Value cut = map.lookup(cuts[s]);
        OpBuilder at = OpBuilder::atBlockBegin(&body);
        auto recv = RecvOp::create(at, loc, cut.getType(), tokens,
                                   at.getI64IntegerAttr(rankOf(s - 1, t)));
        cut.replaceAllUsesWith(recv.getResult());
      }
      OpBuilder atEnd(stageRet);
      if (s + 1 < pp) {
        Value next = map.lookup(cuts[s + 1]);
        OpBuilder after(next.getContext());
        after.setInsertionPointAfterValue(next);
        SendOp::create(after, loc, next,
                       after.getI64IntegerAttr(rankOf(s + 1, t)));
        // The logits come from the last stage.
        for (auto [i, arg] : llvm::enumerate(logitArgs)) {
          Value rows = body.getArgument(arg);
          auto recv =
              RecvOp::create(atEnd, loc, stageRet.getOperand(i).getType(),
                             rows, atEnd.getI64IntegerAttr(rankOf(pp - 1, t)));
          stageRet.setOperand(i, recv.getResult());
        }
      } else {
        for (Value result : stageRet.getOperands())
          for (int64_t r = 0; r + 1 < pp; ++r)
            SendOp::create(atEnd, loc, result,
                           atEnd.getI64IntegerAttr(rankOf(r, t)));
      }
      eraseUnneeded(stage);
    }
    forward.erase();
    return success();
  }
};

} // namespace
