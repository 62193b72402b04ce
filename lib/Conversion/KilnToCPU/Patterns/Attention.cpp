//===- Attention.cpp - kiln.attention to a kernel call --------------------===//
//
// Attention over the KV cache (causal, GQA, sliding window, softcap).
//
//===----------------------------------------------------------------------===//

#include "../StepLowering.h"

using namespace mlir;
using namespace mlir::kiln;

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
    Value q = step.mapped(a.getQuery());
    Value y = step.resultBuffer(a.getResult(), q, b);
    SmallVector<Value> args = {q,
                               step.mapped(a.getKey()),
                               step.mapped(a.getValue()),
                               step.mapped(a.getCache()),
                               step.mapped(a.getPosition()),
                               y,
                               step.rtArg};
    StepLowering::Region cacheRegion = step.regionOf(a.getCache());
    step.callKernel(step.kernels.attention(cfg), args, b,
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
