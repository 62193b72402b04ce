//===- Attention.cpp - kiln.attention to a kernel call --------------------===//
//
// Attention over the KV cache (causal, GQA, sliding window, softcap).
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"
#include "StepLowering.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace mlir::kiln;

namespace {
struct AttentionConfig {
  int64_t numHeads, kvHeads, headDim, layers, context, layer, window;
  float scale, softcap;
  bool causal;
  /// Tokens of several sequences: each token's KV slot and position come
  /// in `slots` and `positions`, and the cache holds one cache per slot.
  bool perSequence;
};
} // namespace

//===----------------------------------------------------------------------===//
// attention over the KV cache
//===----------------------------------------------------------------------===//

/// (q, k, v, cache: memref<?xi8>, position: index, y, rt: !llvm.ptr,
///  tid, nth), or per sequence (q, k, v, cache, slots: memref<?xi32>,
///  positions: memref<?xi32>, y, rt, tid, nth)
static func::FuncOp buildAttentionKernel(KernelLibrary &library,
                                         const AttentionConfig &cfg) {
  int64_t qWidth = cfg.numHeads * cfg.headDim;
  int64_t kvWidth = cfg.kvHeads * cfg.headDim;
  KernelSignature sig(library.getContext());
  sig.rows("q", qWidth).rows("k", kvWidth).rows("v", kvWidth).bytes("cache");
  if (cfg.perSequence)
    sig.ids("slots").ids("positions");
  else
    sig.index("position");
  sig.rows("y", qWidth).pointer("rt");
  std::string name =
      llvm::formatv("kiln_attention_h{0}_kv{1}_d{2}_L{3}_c{4}_l{5}_w{6}_{7}{8}{9}",
                    cfg.numHeads, cfg.kvHeads, cfg.headDim, cfg.layers,
                    cfg.context, cfg.layer, cfg.window,
                    cfg.causal ? "causal" : "full",
                    cfg.softcap > 0 ? "_capped" : "",
                    cfg.perSequence ? "_per_sequence" : "")
          .str();
  KernelBuilder kb(library, sig, name);
  ImplicitLocOpBuilder &b = kb.b;
  Value q = kb.arg("q"), k = kb.arg("k"), v = kb.arg("v"),
        cacheBytes = kb.arg("cache"), y = kb.arg("y"), rt = kb.arg("rt");
  Value tokens = kb.dim(q, 0);
  // Cache layout: [2 (keys, values)][layers][context][kv_heads][head_dim] f32
  // per sequence; several sequences' caches follow each other (slot-major).
  int64_t planeElems = cfg.layers * cfg.context * kvWidth;
  int64_t sequenceElems = 2 * planeElems;
  Value cacheSlots; // how many caches the buffer holds, per sequence only
  Value cache;
  if (cfg.perSequence) {
    cacheSlots = kb.div(kb.dim(cacheBytes, 0),
                        kb.idx(sequenceElems * int64_t(sizeof(float))));
    cache = kb.floatView(cacheBytes, kb.idx(0),
                         kb.mul(cacheSlots, kb.idx(sequenceElems)));
  } else {
    cache = kb.floatView(cacheBytes, kb.idx(0), kb.idx(sequenceElems));
  }
  int64_t layerBase = cfg.layer * cfg.context * kvWidth;
  // Where token t's sequence's cache starts (null: the only one) and its
  // position.
  auto sequenceBase = [&](Value t) -> Value {
    if (!cfg.perSequence)
      return Value();
    return kb.mul(kb.loadIndex(kb.arg("slots"), t), kb.idx(sequenceElems));
  };
  auto positionOf = [&](Value t) {
    return cfg.perSequence ? kb.loadIndex(kb.arg("positions"), t)
                           : kb.add(kb.arg("position"), t);
  };
  auto slot = [&](Value base, int64_t plane, Value pos) {
    Value at = kb.add(kb.idx(plane * planeElems + layerBase),
                      kb.mul(pos, kb.idx(kvWidth)));
    return base ? kb.add(base, at) : at;
  };
  // Whether token t's slot lies inside the cache buffer.
  auto slotInside = [&](Value t) -> Value {
    return arith::CmpIOp::create(b, arith::CmpIPredicate::ult,
                                 kb.loadIndex(kb.arg("slots"), t), cacheSlots);
  };
  int64_t chunks = cfg.headDim / kLanes;

  // 1. Append the new keys and values at each token's position.
  auto [t0, t1] = kb.share(tokens);
  kb.forEach(t0, t1, [&](Value t) {
    Value pos = positionOf(t);
    Value base = sequenceBase(t);
    Value inside = arith::CmpIOp::create(b, arith::CmpIPredicate::ult, pos,
                                         kb.idx(cfg.context));
    if (cfg.perSequence)
      inside = arith::AndIOp::create(b, inside, slotInside(t));
    auto guard = scf::IfOp::create(b, inside, /*withElseRegion=*/false);
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(guard.thenBlock()->getTerminator());
    kb.forEach(kb.idx(0), kb.idx(kvWidth / kLanes), [&](Value c) {
      Value col = kb.mul(c, kb.idx(kLanes));
      kb.store(kb.load(k, {t, col}), cache,
               {kb.add(slot(base, 0, pos), col)});
      kb.store(kb.load(v, {t, col}), cache,
               {kb.add(slot(base, 1, pos), col)});
    });
  });
  func::CallOp::create(b, library.barrier(), ValueRange{rt});

  // 2. One (token, head) pair at a time, online softmax over the visible
  //    positions in chunks of 16 (no score buffer): the 16 scores of a chunk
  //    form one vector, so max, exp and sum are vector ops.
  Value heads = kb.idx(cfg.numHeads);
  auto [i0, i1] = kb.share(kb.mul(tokens, heads));
  int64_t group = cfg.numHeads / cfg.kvHeads;
  constexpr int64_t kChunk = kLanes;
  Value lastPosition = kb.idx(cfg.context - 1);
  Value lanesIota = arith::ConstantOp::create(
      b, DenseElementsAttr::get(
             VectorType::get({kChunk}, b.getIndexType()),
             llvm::to_vector(llvm::map_range(
                 llvm::seq<int64_t>(0, kChunk),
                 [&](int64_t i) -> Attribute { return b.getIndexAttr(i); }))));
  kb.forEach(i0, i1, [&](Value item) {
    Value t = kb.div(item, heads);
    Value h = kb.rem(item, heads);
    Value kvCol = kb.mul(kb.div(h, kb.idx(group)), kb.idx(cfg.headDim));
    Value qCol = kb.mul(h, kb.idx(cfg.headDim));
    SmallVector<Value> qv;
    for (int64_t c = 0; c < chunks; ++c)
      qv.push_back(kb.load(q, {t, kb.add(qCol, kb.idx(c * kLanes))}));
    Value base = sequenceBase(t);
    Value last = positionOf(t); // inclusive, causal
    Value end = cfg.causal ? kb.add(last, kb.idx(1))
                           : kb.add(kb.arg("position"), tokens);
    end = arith::MinUIOp::create(b, end, kb.idx(cfg.context));
    // A token whose slot is outside the buffer reads nothing.
    if (cfg.perSequence)
      end = arith::SelectOp::create(b, slotInside(t), end, kb.idx(0));
    Value start = kb.idx(0);
    if (cfg.window > 0) {
      Value w = kb.idx(cfg.window);
      Value ge = arith::CmpIOp::create(b, arith::CmpIPredicate::uge, end, w);
      start = arith::SelectOp::create(b, ge, kb.sub(end, w), kb.idx(0));
    }
    SmallVector<Value> inits = {kb.f(-3.0e38f), kb.f(0.0f)};
    for (int64_t c = 0; c < chunks; ++c)
      inits.push_back(kb.zeros());
    auto scan = kb.loop(start, end, kb.idx(kChunk), inits,
                        [&](Value j0, ValueRange state) {
      // Positions past `end` (the last chunk's tail) get a score of -inf and
      // read a clamped, valid cache row.
      Value valid = arith::CmpIOp::create(
          b, arith::CmpIPredicate::ult,
          arith::AddIOp::create(b, vector::BroadcastOp::create(
                                       b, lanesIota.getType(), j0),
                                lanesIota),
          vector::BroadcastOp::create(b, lanesIota.getType(), end));
      SmallVector<Value> rows;
      Value scores = kb.splat(kb.f(0.0f));
      for (int64_t jj = 0; jj < kChunk; ++jj) {
        Value j =
            arith::MinUIOp::create(b, kb.add(j0, kb.idx(jj)), lastPosition);
        rows.push_back(j);
        Value kBase = kb.add(slot(base, 0, j), kvCol);
        Value dot = kb.zeros();
        for (int64_t c = 0; c < chunks; ++c)
          dot = kb.fma(
              qv[c], kb.load(cache, {kb.add(kBase, kb.idx(c * kLanes))}), dot);
        scores = vector::InsertOp::create(b, kb.sum(dot), scores,
                                          ArrayRef<int64_t>{jj});
      }
      scores = kb.mul(scores, kb.splat(kb.f(cfg.scale)));
      if (cfg.softcap > 0)
        scores = kb.mul(math::TanhOp::create(
                            b, kb.div(scores, kb.splat(kb.f(cfg.softcap)))),
                        kb.splat(kb.f(cfg.softcap)));
      scores = arith::SelectOp::create(b, valid, scores,
                                       kb.splat(kb.f(-3.0e38f)));
      Value chunkMax = vector::ReductionOp::create(
          b, vector::CombiningKind::MAXIMUMF, scores);
      Value m = kb.maxf(state[0], chunkMax);
      Value corr = kb.exp(kb.sub(state[0], m));
      Value p = arith::SelectOp::create(
          b, valid, kb.exp(kb.sub(scores, kb.splat(m))), kb.zeros());
      SmallVector<Value> out = {m, kb.add(kb.mul(state[1], corr), kb.sum(p))};
      Value corrV = kb.splat(corr);
      SmallVector<Value> acc;
      for (int64_t c = 0; c < chunks; ++c)
        acc.push_back(kb.mul(state[2 + c], corrV));
      for (int64_t jj = 0; jj < kChunk; ++jj) {
        Value pj =
            kb.splat(vector::ExtractOp::create(b, p, ArrayRef<int64_t>{jj}));
        Value vBase = kb.add(slot(base, 1, rows[jj]), kvCol);
        for (int64_t c = 0; c < chunks; ++c)
          acc[c] = kb.fma(
              pj, kb.load(cache, {kb.add(vBase, kb.idx(c * kLanes))}), acc[c]);
      }
      out.append(acc);
      return out;
    });
    Value inv = kb.splat(kb.div(kb.f(1.0f), scan.getResult(1)));
    for (int64_t c = 0; c < chunks; ++c)
      kb.store(kb.mul(scan.getResult(2 + c), inv), y,
               {t, kb.add(qCol, kb.idx(c * kLanes))});
  });
  return kb.finish();
}

//===----------------------------------------------------------------------===//
// Patterns
//===----------------------------------------------------------------------===//

namespace {

struct AttentionLowering : KernelCallPattern<AttentionOp> {
  LogicalResult lower(AttentionOp a, StepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    Operation *op = a;
    for (Value v : {a.getQuery(), a.getKey(), a.getValue()})
      if (failed(step.requireRowsF32(op, v)))
        return failure();
    KVCacheType cache = a.getCache().getType();
    if (!cache.getElementType().isF32())
      return a.emitOpError("the CPU lowering needs an f32 KV cache");
    if (cache.getHeadDim() % kLanes != 0)
      return a.emitOpError("the CPU lowering needs head_dim to be a "
                           "multiple of 16");
    AttentionConfig cfg;
    cfg.numHeads = a.getNumHeads();
    cfg.kvHeads = cache.getKvHeads();
    cfg.headDim = cache.getHeadDim();
    cfg.layers = cache.getLayers();
    cfg.context = cache.getContextLength();
    cfg.layer = a.getLayer();
    cfg.window = a.getSlidingWindow();
    cfg.scale = a.getScale().convertToFloat();
    cfg.softcap = a.getSoftcap().convertToFloat();
    cfg.causal = a.getCausal();
    cfg.perSequence = bool(a.getPositions());
    Value q = step.mapped(a.getQuery());
    Value y = step.resultBuffer(a.getResult(), q, b);
    SmallVector<Value> args = {q, step.mapped(a.getKey()),
                               step.mapped(a.getValue()),
                               step.mapped(a.getCache())};
    if (cfg.perSequence)
      args.append({step.mapped(a.getSlots()), step.mapped(a.getPositions())});
    else
      args.push_back(step.mapped(a.getPosition()));
    args.append({y, step.rtArg});
    StepLowering::Region cacheRegion = step.regionOf(a.getCache());
    step.callKernel(buildAttentionKernel(step.kernels, cfg), args, b,
                    {step.regionOf(a.getQuery()), step.regionOf(a.getKey()),
                     step.regionOf(a.getValue()), cacheRegion},
                    {step.regionOf(a.getResult()), cacheRegion});
    step.bind(a.getResult(), y);
    return success();
  }
};

} // namespace

void mlir::kiln::populateAttentionPatterns(KernelCallPatterns &patterns) {
  patterns.add<AttentionLowering>();
}
