//===- Attention.cpp - kiln.attention over the KV cache -------------------===//
//
// Two kernels, in stream order: one appends the T new keys and values to the
// cache ([2 (keys, values)][layers][context][kv_heads][head_dim] f32, the
// CPU lowering's layout), then one block per (token, head) attends over the
// visible positions. Its kAttendWarps warps split the positions (warp w takes
// every kAttendWarps-th from the w-th, two per step so that their loads are in
// flight together), each with an online softmax: lane l holds dims l, l + 32,
// ... of q and of the output; a shuffle-xor sum gives each position's score.
// The warps' maxima, sums and outputs meet in shared memory, where warp 0
// merges them. One warp per head walked every position in turn: at decode, a
// few warps in all for the whole chip (41 us at SmolLM2's position 130 on the
// H200, against 5.8 us now).
//
//===----------------------------------------------------------------------===//

#include "GPUStepLowering.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace mlir::kiln;

namespace {

struct AttentionShape {
  int64_t heads, kvHeads, headDim, layers, context, layer, window;
  float scale, softcap;
  bool causal;
  int64_t kvWidth() const { return kvHeads * headDim; }
  int64_t planeElems() const { return layers * context * kvWidth(); }
};

constexpr int64_t kAppendThreads = 128;
/// Warps of one (token, head)'s attention block.
constexpr int64_t kAttendWarps = 16;

int64_t appendKernel(GPUKernelLibrary &kernels, const AttentionShape &a) {
  std::string name =
      llvm::formatv("kiln_kv_append_kv{0}_d{1}_L{2}_c{3}_l{4}", a.kvHeads,
                    a.headDim, a.layers, a.context, a.layer);
  return kernels.get(
      name,
      {{"k", KernelArgKind::Buffer},
       {"v", KernelArgKind::Buffer},
       {"cache", KernelArgKind::Buffer},
       {"position", KernelArgKind::Index}},
      [&](GPUKernelBuilder &kb) {
        Type f32 = kb.b.getF32Type();
        Value k = kb.view("k", f32), v = kb.view("v", f32);
        Value cache = kb.view("cache", f32);
        Value t = kb.blockIdx(gpu::Dimension::x);
        Value pos = kb.add(kb.arg("position"), t);
        kb.ifThen(kb.ult(pos, kb.idx(a.context)), [&] {
          Value slot = kb.add(kb.idx(a.layer * a.context * a.kvWidth()),
                              kb.mul(pos, kb.idx(a.kvWidth())));
          Value src = kb.mul(t, kb.idx(a.kvWidth()));
          kb.forEach(kb.threadIdx(), kb.idx(a.kvWidth()),
                     kb.idx(kAppendThreads), [&](Value c) {
                       kb.store(kb.load(k, kb.add(src, c)), cache,
                                kb.add(slot, c));
                       kb.store(kb.load(v, kb.add(src, c)), cache,
                                kb.add(kb.add(slot, kb.idx(a.planeElems())), c));
                     });
        });
      });
}

int64_t attendKernel(GPUKernelLibrary &kernels, const AttentionShape &a) {
  std::string name = llvm::formatv(
      "kiln_attention_h{0}_kv{1}_d{2}_L{3}_c{4}_l{5}_w{6}_{7}_s{8}{9}_"
      "split{10}",
      a.heads, a.kvHeads, a.headDim, a.layers, a.context, a.layer, a.window,
      a.causal ? "causal" : "full", floatKey(a.scale),
      a.softcap > 0 ? "_cap" + floatKey(a.softcap) : "", kAttendWarps);
  return kernels.get(
      name,
      {{"q", KernelArgKind::Buffer},
       {"cache", KernelArgKind::Buffer},
       {"y", KernelArgKind::Buffer},
       {"position", KernelArgKind::Index},
       {"tokens", KernelArgKind::Index}},
      [&](GPUKernelBuilder &kb) {
        ImplicitLocOpBuilder &b = kb.b;
        Type f32 = b.getF32Type();
        Value q = kb.view("q", f32), y = kb.view("y", f32);
        Value cache = kb.view("cache", f32);
        Value position = kb.arg("position"), tokens = kb.arg("tokens");
        Value t = kb.blockIdx(gpu::Dimension::x);
        Value h = kb.blockIdx(gpu::Dimension::y);
        Value lane = kb.lane(), warp = kb.warp();
        int64_t perLane = a.headDim / kWarpSize;
        // Each warp's maximum, sum and unnormalized output, for the merge.
        Value maxima = kb.sharedArray(kAttendWarps, f32);
        Value sums = kb.sharedArray(kAttendWarps, f32);
        Value outputs = kb.sharedArray(kAttendWarps * a.headDim, f32);
        int64_t group = a.heads / a.kvHeads;
        Value qCol = kb.add(kb.mul(t, kb.idx(a.heads * a.headDim)),
                            kb.mul(h, kb.idx(a.headDim)));
        Value kvCol = kb.mul(kb.div(h, kb.idx(group)), kb.idx(a.headDim));
        SmallVector<Value> qv;
        for (int64_t d = 0; d < perLane; ++d)
          qv.push_back(kb.load(
              q, kb.add(qCol, kb.add(lane, kb.idx(d * kWarpSize)))));
        Value end = a.causal ? kb.add(kb.add(position, t), kb.idx(1))
                             : kb.add(position, tokens);
        end = kb.minu(end, kb.idx(a.context));
        Value start = kb.idx(0);
        if (a.window > 0) {
          Value w = kb.idx(a.window);
          start = kb.select(kb.ult(end, w), kb.idx(0), kb.sub(end, w));
        }
        Value layerBase = kb.idx(a.layer * a.context * a.kvWidth());
        SmallVector<Value> inits = {kb.f(-3.0e38f), kb.f(0.0f)};
        for (int64_t d = 0; d < perLane; ++d)
          inits.push_back(kb.f(0.0f));
        // Dims lane, lane + 32, ... of the K (plane 0) or V row of position j.
        auto rowOf = [&](Value j, int64_t plane) {
          return kb.add(layerBase,
                        kb.add(kb.add(kb.mul(j, kb.idx(a.kvWidth())), kvCol),
                               kb.idx(plane * a.planeElems())));
        };
        auto dims = [&](Value row) {
          SmallVector<Value> v;
          for (int64_t d = 0; d < perLane; ++d)
            v.push_back(kb.load(cache, kb.add(row, kb.add(lane, kb.idx(
                                                          d * kWarpSize)))));
          return v;
        };
        auto scoreOf = [&](ArrayRef<Value> keys) {
          Value partial = kb.f(0.0f);
          for (int64_t d = 0; d < perLane; ++d)
            partial = kb.fma(qv[d], keys[d], partial);
          Value score = kb.mul(kb.warpSum(partial), kb.f(a.scale));
          if (a.softcap > 0)
            score = kb.mul(math::TanhOp::create(
                               b, kb.div(score, kb.f(a.softcap))),
                           kb.f(a.softcap));
          return score;
        };
        // Two positions per step (j and j + kAttendWarps), their loads issued
        // together; past the end the second is position end - 1 again with
        // score -3e38, so its weight is 0.
        auto scan = kb.loop(
            kb.add(start, warp), end, kb.idx(2 * kAttendWarps), inits,
            [&](Value j, ValueRange state) {
              Value j2 = kb.add(j, kb.idx(kAttendWarps));
              Value valid2 = kb.ult(j2, end);
              j2 = kb.minu(j2, kb.sub(end, kb.idx(1)));
              SmallVector<Value> k1 = dims(rowOf(j, 0));
              SmallVector<Value> k2 = dims(rowOf(j2, 0));
              SmallVector<Value> v1 = dims(rowOf(j, 1));
              SmallVector<Value> v2 = dims(rowOf(j2, 1));
              Value s1 = scoreOf(k1);
              Value s2 = kb.select(valid2, scoreOf(k2), kb.f(-3.0e38f));
              Value m = kb.maxf(state[0], kb.maxf(s1, s2));
              Value corr = kb.exp(kb.sub(state[0], m));
              Value p1 = kb.exp(kb.sub(s1, m)), p2 = kb.exp(kb.sub(s2, m));
              SmallVector<Value> next = {
                  m, kb.add(kb.fma(state[1], corr, p1), p2)};
              for (int64_t d = 0; d < perLane; ++d)
                next.push_back(kb.fma(
                    p2, v2[d], kb.fma(p1, v1[d], kb.mul(state[2 + d], corr))));
              return next;
            });
        // A warp that saw no position keeps max -3e38 and sum 0: its weight
        // below is 0.
        kb.store(scan.getResult(0), maxima, warp);
        kb.store(scan.getResult(1), sums, warp);
        Value own = kb.mul(warp, kb.idx(a.headDim));
        for (int64_t d = 0; d < perLane; ++d)
          kb.store(scan.getResult(2 + d), outputs,
                   kb.add(own, kb.add(lane, kb.idx(d * kWarpSize))));
        kb.barrier();
        kb.ifThen(kb.ult(warp, kb.idx(1)), [&] {
          Value m = kb.load(maxima, kb.idx(0));
          for (int64_t w = 1; w < kAttendWarps; ++w)
            m = kb.maxf(m, kb.load(maxima, kb.idx(w)));
          Value total = kb.f(0.0f);
          SmallVector<Value> out(perLane, kb.f(0.0f));
          for (int64_t w = 0; w < kAttendWarps; ++w) {
            Value weight = kb.exp(kb.sub(kb.load(maxima, kb.idx(w)), m));
            total = kb.fma(kb.load(sums, kb.idx(w)), weight, total);
            for (int64_t d = 0; d < perLane; ++d)
              out[d] = kb.fma(
                  kb.load(outputs,
                          kb.add(kb.idx(w * a.headDim + d * kWarpSize), lane)),
                  weight, out[d]);
          }
          Value inv = kb.div(kb.f(1.0f), total);
          for (int64_t d = 0; d < perLane; ++d)
            kb.store(kb.mul(out[d], inv), y,
                     kb.add(qCol, kb.add(lane, kb.idx(d * kWarpSize))));
        });
      });
}

struct AttentionLowering : GPUKernelPattern<AttentionOp> {
  LogicalResult lower(AttentionOp a, GPUStepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    Operation *op = a;
    for (Value v : {a.getQuery(), a.getKey(), a.getValue()})
      if (failed(step.requireRowsF32(op, v.getType(), 1)))
        return failure();
    KVCacheType cache = a.getCache().getType();
    if (!cache.getElementType().isF32())
      return a.emitOpError("the GPU lowering needs an f32 KV cache");
    if (cache.getHeadDim() % kWarpSize != 0)
      return a.emitOpError("the GPU lowering needs head_dim to be a multiple "
                           "of 32, got ")
             << cache.getHeadDim();
    AttentionShape shape{int64_t(a.getNumHeads()),
                         cache.getKvHeads(),
                         cache.getHeadDim(),
                         cache.getLayers(),
                         cache.getContextLength(),
                         int64_t(a.getLayer()),
                         int64_t(a.getSlidingWindow()),
                         a.getScale().convertToFloat(),
                         a.getSoftcap().convertToFloat(),
                         a.getCausal()};
    Value q = step.mapped(a.getQuery());
    Value y = step.resultBuffer(a.getResult(), q, b);
    Value cacheBuffer = step.mapped(a.getCache());
    Value position = step.mapped(a.getPosition());
    Value tokens = step.rowsOf(q, b);
    Value one = arith::ConstantIndexOp::create(b, 1);
    step.launch(appendKernel(step.kernels, shape), {tokens, one, one},
                {kAppendThreads, 1, 1},
                {step.mapped(a.getKey()), step.mapped(a.getValue()),
                 cacheBuffer, position},
                b);
    step.launch(attendKernel(step.kernels, shape),
                {tokens, arith::ConstantIndexOp::create(b, shape.heads), one},
                {kAttendWarps * kWarpSize, 1, 1},
                {q, cacheBuffer, y, position, tokens}, b);
    step.bind(a.getResult(), y);
    return success();
  }
};

} // namespace

void mlir::kiln::populateGPUAttentionPatterns(GPUKernelPatterns &patterns) {
  patterns.add<AttentionLowering>();
}
