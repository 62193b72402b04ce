//===- Rope.cpp - kiln.rope to kernel calls -------------------------------===//
//
// RoPE from a cos/sin table shared by every rope of the same frequencies
// and position in a step.
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"
#include "StepLowering.h"

#include "llvm/ADT/bit.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/xxhash.h"
#include <cmath>

using namespace mlir;
using namespace mlir::kiln;

//===----------------------------------------------------------------------===//
// rope
//===----------------------------------------------------------------------===//

static std::string ropeName(StringRef kind, const RopeConfig &cfg) {
  std::string name =
      llvm::formatv("kiln_{0}_{1}_{2}x{3}_r{4}_b{5}_s{6}", kind,
                    cfg.neox ? "neox" : "llama", cfg.numHeads, cfg.headDim,
                    cfg.rotaryDim, int64_t(cfg.freqBase),
                    int64_t(cfg.freqScale * 1000000))
          .str();
  // Long-context scalings: the factors' bits and the magnitude's name the
  // table they build (absent for plain RoPE, whose names stay as they were).
  if (!cfg.freqFactors.empty() || cfg.magnitude != 1.0f) {
    ArrayRef<uint8_t> bytes(
        reinterpret_cast<const uint8_t *>(cfg.freqFactors.data()),
        cfg.freqFactors.size() * sizeof(float));
    name += llvm::formatv("_f{0:x-}_m{1:x-}", llvm::xxh3_64bits(bytes),
                          llvm::bit_cast<uint32_t>(cfg.magnitude))
                .str();
  }
  return name;
}

func::FuncOp mlir::kiln::buildRopeTableKernel(KernelLibrary &library,
                                              const RopeConfig &cfg,
                                              bool perTokenPositions) {
  RopeConfig key = cfg;
  key.neox = false;
  key.numHeads = key.headDim = 0;
  KernelSignature sig(library.getContext());
  if (perTokenPositions)
    sig.ids("position");
  else
    sig.index("position");
  sig.index("tokens").bytesAt("table");
  KernelBuilder kb(library, sig,
                   ropeName(perTokenPositions ? "rope_table_per_token"
                                              : "rope_table",
                            key));
  ImplicitLocOpBuilder &b = kb.b;
  Value position = kb.arg("position"), tokens = kb.arg("tokens");
  Value table = kb.arg("table"), offset = kb.arg("tableOffset");
  int64_t half = cfg.rotaryDim / 2;
  Value view = kb.floatView(table, offset, kb.mul(tokens, kb.idx(2 * half)));
  auto [t0, t1] = kb.share(tokens);
  // theta_i = p * base^(-2i/d), built by repeated multiplication in f32 as
  // ggml does, so Kiln's rotations match llama.cpp's as far as cos/sin allow.
  float thetaScale = std::pow(cfg.freqBase, -2.0f / float(cfg.rotaryDim));
  // Token t's position: its own in a step over several sequences, else
  // the step's first position plus t.
  auto tokenPosition = [&](Value t) -> Value {
    return kb.toF32(perTokenPositions ? kb.loadIndex(position, t)
                                      : kb.add(position, t));
  };
  if (!cfg.freqFactors.empty() || cfg.magnitude != 1.0f) {
    // Each frequency has its own multiplier: the loop over frequencies is
    // unrolled with them as constants (rotary_dim / 2 of them).
    kb.forEach(t0, t1, [&](Value t) {
      Value theta = tokenPosition(t);
      Value rowBase = kb.mul(t, kb.idx(2 * half));
      for (int64_t i = 0; i < half; ++i) {
        float factor = cfg.freqFactors.empty() ? 1.0f : cfg.freqFactors[i];
        Value angle = kb.mul(theta, kb.f(cfg.freqScale * factor));
        Value at = kb.add(rowBase, kb.idx(2 * i));
        Value cos = math::CosOp::create(b, angle);
        Value sin = math::SinOp::create(b, angle);
        if (cfg.magnitude != 1.0f) {
          cos = kb.mul(cos, kb.f(cfg.magnitude));
          sin = kb.mul(sin, kb.f(cfg.magnitude));
        }
        memref::StoreOp::create(b, cos, view, at);
        memref::StoreOp::create(b, sin, view, kb.add(at, kb.idx(1)));
        theta = kb.mul(theta, kb.f(thetaScale));
      }
    });
    return kb.finish();
  }
  kb.forEach(t0, t1, [&](Value t) {
    Value p = tokenPosition(t);
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

/// (x: memref<?xWxf32>, table: memref<?xi8>, offset: index, y, tid, nth);
/// x may be y: each pair is loaded before it is stored.
static func::FuncOp buildRopeKernel(KernelLibrary &library,
                                    const RopeConfig &cfg) {
  KernelSignature sig(library.getContext());
  sig.rows("x", cfg.width).bytesAt("table").rows("y", cfg.width);
  // The rotation reads its angles from the table: the scalings shape only
  // the table kernel.
  RopeConfig key = cfg;
  key.freqFactors.clear();
  key.magnitude = 1.0f;
  KernelBuilder kb(library, sig, ropeName("rope", key));
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

LogicalResult mlir::kiln::emitRope(StepLowering &step, Operation *op,
                                   RopeAttr rope, Value position, Value input,
                                   Value result, ImplicitLocOpBuilder &b) {
  Value x = step.mapped(input), y = step.mapped(result);
  // One cos/sin table per frequency set and position: the first rope of the
  // step fills it, the others read it.
  FailureOr<StepLowering::RopeTable *> table =
      step.ropeTableFor(op, rope, position, x, b);
  if (failed(table))
    return failure();
  int64_t at = (*table)->offset, bytes = (*table)->bytes;
  step.callKernel(buildRopeKernel(step.kernels, ropeConfigOf(rope)),
                  {x, step.scratchArg, idx(b, at), y}, b,
                  {step.regionOf(input), step.scratchRegion(at, bytes)},
                  {step.regionOf(result)});
  return success();
}

namespace {

struct RopeLowering : KernelCallPattern<RopeOp> {
  LogicalResult lower(RopeOp r, StepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    if (failed(step.requireRowsF32(r, r.getInput())))
      return failure();
    step.bind(r.getResult(),
              step.resultBuffer(r.getResult(), step.mapped(r.getInput()), b));
    return emitRope(step, r, r.getParameters(), r.getPositionSource(),
                    r.getInput(), r.getResult(), b);
  }
};

} // namespace

void mlir::kiln::populateRopePatterns(KernelCallPatterns &patterns) {
  patterns.add<RopeLowering>();
}
