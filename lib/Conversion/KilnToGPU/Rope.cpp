//===- Rope.cpp - kiln.rope -----------------------------------------------===//
//
// One warp per (token, head); lane i rotates pairs i, i + 32, ...: adjacent
// pairs (2i, 2i + 1) for llama style, (i, i + rotary_dim / 2) for NeoX, by
// angle (position + t) * freq_scale * freq_base^(-2i / rotary_dim).
//
//===----------------------------------------------------------------------===//

#include "GPUStepLowering.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>

using namespace mlir;
using namespace mlir::kiln;

namespace {

int64_t ropeKernel(GPUKernelLibrary &kernels, RopeAttr rope) {
  struct {
    int64_t heads, headDim, rotaryDim;
    bool neox;
  } r{rope.getNumHeads(), rope.getHeadDim(), rope.getRotaryDim(),
      rope.getStyle() == RopeStyle::NeoX};
  std::string name = llvm::formatv(
      "kiln_rope_{0}_{1}x{2}_r{3}_b{4}_s{5}", r.neox ? "neox" : "llama",
      r.heads, r.headDim, r.rotaryDim,
      floatKey(rope.getFreqBase().convertToFloat()),
      floatKey(rope.getFreqScale().convertToFloat()));
  return kernels.get(
      name,
      {{"x", KernelArgKind::Buffer},
       {"y", KernelArgKind::Buffer},
       {"position", KernelArgKind::Index}},
      [&](GPUKernelBuilder &kb) {
        ImplicitLocOpBuilder &b = kb.b;
        Type f32 = b.getF32Type();
        Value x = kb.view("x", f32), y = kb.view("y", f32);
        Value t = kb.blockIdx(gpu::Dimension::x);
        Value h = kb.blockIdx(gpu::Dimension::y);
        Value head = kb.add(kb.mul(t, kb.idx(r.heads * r.headDim)),
                            kb.mul(h, kb.idx(r.headDim)));
        Value p = kb.add(kb.arg("position"), t);
        int64_t half = r.rotaryDim / 2;
        kb.forEach(kb.lane(), kb.idx(half), kb.idx(kWarpSize), [&](Value i) {
          Value angle = ropeAngle(kb, rope, i, p);
          Value cos = math::CosOp::create(b, angle);
          Value sin = math::SinOp::create(b, angle);
          Value a = r.neox ? kb.add(head, i) : kb.add(head, kb.mul(i, kb.idx(2)));
          Value c = kb.add(a, kb.idx(r.neox ? half : 1));
          Value x0 = kb.load(x, a), x1 = kb.load(x, c);
          kb.store(kb.sub(kb.mul(x0, cos), kb.mul(x1, sin)), y, a);
          kb.store(kb.add(kb.mul(x0, sin), kb.mul(x1, cos)), y, c);
        });
        // Dimensions past rotary_dim pass through.
        kb.forEach(kb.add(kb.idx(r.rotaryDim), kb.lane()), kb.idx(r.headDim),
                   kb.idx(kWarpSize), [&](Value d) {
                     kb.store(kb.load(x, kb.add(head, d)), y, kb.add(head, d));
                   });
      });
}

struct RopeLowering : GPUKernelPattern<RopeOp> {
  LogicalResult lower(RopeOp r, GPUStepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    if (failed(step.requireRowsF32(r, r.getInput().getType(), 1)) ||
        failed(checkGPURope(r, r.getParameters())))
      return failure();
    if (r.getPositions())
      return r.emitOpError("with per-token positions (a step over several "
                           "sequences) is not supported on the GPU yet");
    Value x = step.mapped(r.getInput());
    Value y = step.resultBuffer(r.getResult(), x, b);
    launchRope(step, r.getParameters(), x, y, step.mapped(r.getPosition()),
               b);
    step.bind(r.getResult(), y);
    return success();
  }
};

} // namespace

LogicalResult mlir::kiln::checkGPURope(Operation *op, RopeAttr rope) {
  if (rope.getFreqFactors() || !rope.getMagnitude().isExactlyValue(1.0))
    return op->emitOpError("freq_factors and magnitude (Llama 3 and YaRN "
                           "rope scaling) are not supported by the CUDA "
                           "lowering yet");
  return success();
}

void mlir::kiln::launchRope(GPUStepLowering &step, RopeAttr rope, Value x,
                            Value y, Value position, ImplicitLocOpBuilder &b) {
  Value one = arith::ConstantIndexOp::create(b, 1);
  step.launch(ropeKernel(step.kernels, rope),
              {step.rowsOf(x, b),
               arith::ConstantIndexOp::create(b, rope.getNumHeads()), one},
              {kWarpSize, 1, 1}, {x, y, position}, b);
}

Value mlir::kiln::ropeAngle(GPUKernelBuilder &kb, RopeAttr rope, Value pair,
                            Value position) {
  float logBase = std::log(rope.getFreqBase().convertToFloat());
  Value p = kb.mul(kb.toF32(position),
                   kb.f(rope.getFreqScale().convertToFloat()));
  Value exponent = kb.mul(kb.toF32(pair),
                          kb.f(-2.0f * logBase / float(rope.getRotaryDim())));
  return kb.mul(p, kb.exp(exponent));
}

void mlir::kiln::populateGPURopePatterns(GPUKernelPatterns &patterns) {
  patterns.add<RopeLowering>();
}
