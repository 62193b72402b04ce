//===- Rope.cpp - kiln.rope to kernel calls -------------------------------===//
//
// RoPE from a cos/sin table shared by every rope of the same frequencies
// and position in a step.
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"
#include "StepLowering.h"

#include "llvm/Support/FormatVariadic.h"
#include <cmath>

using namespace mlir;
using namespace mlir::kiln;

//===----------------------------------------------------------------------===//
// rope
//===----------------------------------------------------------------------===//

static std::string ropeName(StringRef kind, const RopeConfig &cfg) {
  return llvm::formatv("kiln_{0}_{1}_{2}x{3}_r{4}_b{5}_s{6}", kind,
                       cfg.neox ? "neox" : "llama", cfg.numHeads, cfg.headDim,
                       cfg.rotaryDim, int64_t(cfg.freqBase),
                       int64_t(cfg.freqScale * 1000000))
      .str();
}

func::FuncOp mlir::kiln::buildRopeTableKernel(KernelLibrary &library,
                                              const RopeConfig &cfg) {
  RopeConfig key = cfg;
  key.neox = false;
  key.numHeads = key.headDim = 0;
  KernelSignature sig(library.getContext());
  sig.index("position").index("tokens").bytesAt("table");
  KernelBuilder kb(library, sig, ropeName("rope_table", key));
  ImplicitLocOpBuilder &b = kb.b;
  Value position = kb.arg("position"), tokens = kb.arg("tokens");
  Value table = kb.arg("table"), offset = kb.arg("tableOffset");
  int64_t half = cfg.rotaryDim / 2;
  Value view = kb.floatView(table, offset, kb.mul(tokens, kb.idx(2 * half)));
  auto [t0, t1] = kb.share(tokens);
  // theta_i = p * base^(-2i/d), built by repeated multiplication in f32 as
  // ggml does, so Kiln's rotations match llama.cpp's as far as cos/sin allow.
  float thetaScale = std::pow(cfg.freqBase, -2.0f / float(cfg.rotaryDim));
  kb.forEach(t0, t1, [&](Value t) {
    Value p = kb.toF32(kb.add(position, t));
    Value rowBase = kb.mul(t, kb.idx(2 * half));
    kb.loop(kb.idx(0), kb.idx(half), kb.idx(1), {p},
            [&](Value i, ValueRange theta) {
              Value angle = kb.mul(theta[0], kb.f(cfg.freqScale));
              Value at = kb.add(rowBase, kb.mul(i, kb.idx(2)));
              memref::StoreOp::create(b, math::CosOp::create(b, angle), view,
                                      at);
              memref::StoreOp::create(b, math::SinOp::create(b, angle), view,
                                      kb.add(at, kb.idx(1)));
              return SmallVector<Value>{kb.mul(theta[0], kb.f(thetaScale))};
            });
  });
  return kb.finish();
}

/// (x: memref<?xWxf32>, table: memref<?xi8>, offset: index, y, tid, nth)
static func::FuncOp buildRopeKernel(KernelLibrary &library,
                                    const RopeConfig &cfg) {
  KernelSignature sig(library.getContext());
  sig.rows("x", cfg.width).bytesAt("table").rows("y", cfg.width);
  KernelBuilder kb(library, sig, ropeName("rope", cfg));
  ImplicitLocOpBuilder &b = kb.b;
  Value x = kb.arg("x"), y = kb.arg("y");
  Value table = kb.arg("table"), offset = kb.arg("tableOffset");
  int64_t half = cfg.rotaryDim / 2;
  Value tokens = kb.dim(x, 0);
  Value view = kb.floatView(table, offset, kb.mul(tokens, kb.idx(2 * half)));
  Value heads = kb.idx(cfg.numHeads);
  auto [i0, i1] = kb.share(kb.mul(tokens, heads));
  kb.forEach(i0, i1, [&](Value item) {
    Value t = kb.div(item, heads);
    Value h = kb.rem(item, heads);
    Value base = kb.mul(h, kb.idx(cfg.headDim));
    Value rowBase = kb.mul(t, kb.idx(2 * half));
    kb.forEach(kb.idx(0), kb.idx(half), [&](Value i) {
      Value at = kb.add(rowBase, kb.mul(i, kb.idx(2)));
      Value cos = memref::LoadOp::create(b, view, at);
      Value sin = memref::LoadOp::create(b, view, kb.add(at, kb.idx(1)));
      Value a, c;
      if (cfg.neox) {
        a = kb.add(base, i);
        c = kb.add(a, kb.idx(half));
      } else {
        a = kb.add(base, kb.mul(i, kb.idx(2)));
        c = kb.add(a, kb.idx(1));
      }
      Value x0 = memref::LoadOp::create(b, x, ValueRange{t, a});
      Value x1 = memref::LoadOp::create(b, x, ValueRange{t, c});
      memref::StoreOp::create(b, kb.sub(kb.mul(x0, cos), kb.mul(x1, sin)), y,
                              ValueRange{t, a});
      memref::StoreOp::create(b, kb.add(kb.mul(x0, sin), kb.mul(x1, cos)), y,
                              ValueRange{t, c});
    });
    // Dimensions past rotary_dim pass through.
    kb.forEach(kb.idx(cfg.rotaryDim), kb.idx(cfg.headDim), [&](Value d) {
      Value v = memref::LoadOp::create(b, x, ValueRange{t, kb.add(base, d)});
      memref::StoreOp::create(b, v, y, ValueRange{t, kb.add(base, d)});
    });
  });
  return kb.finish();
}

//===----------------------------------------------------------------------===//
// Patterns
//===----------------------------------------------------------------------===//

namespace {

struct RopeLowering : KernelCallPattern<RopeOp> {
  LogicalResult lower(RopeOp r, StepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    Operation *op = r;
    if (step.fusedOps.contains(r))
      return success(); // applied by the projection before it
    if (failed(step.requireRowsF32(op, r.getInput())))
      return failure();
    RopeConfig cfg = ropeConfigOf(r);
    Value x = step.mapped(r.getInput());
    Value y = step.resultBuffer(r.getResult(), x, b);
    // One cos/sin table per frequency set and position: the first rope
    // of the step fills it, the others read it.
    FailureOr<StepLowering::RopeTable *> table = step.ropeTableFor(r, x, b);
    if (failed(table))
      return failure();
    int64_t at = (*table)->offset, bytes = (*table)->bytes;
    step.callKernel(
        buildRopeKernel(step.kernels, cfg), {x, step.scratchArg, idx(b, at), y},
        b, {step.regionOf(r.getInput()), step.scratchRegion(at, bytes)},
        {step.regionOf(r.getResult())});
    step.bind(r.getResult(), y);
    return success();
  }
};

} // namespace

void mlir::kiln::populateRopePatterns(KernelCallPatterns &patterns) {
  patterns.add<RopeLowering>();
}
