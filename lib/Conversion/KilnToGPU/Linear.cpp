//===- Linear.cpp - kiln.linear as a GEMV with fused dequantization -------===//
//
// One warp per output row and token: each lane decodes whole 32-value chunks
// of the weight row in registers (GPUWeightDecoder), multiplies them with the
// activations (128-bit loads) into f32 accumulators, and a shuffle-xor
// reduction sums the lanes; lane 0 adds bias and kiln-fuse's residual.
// Prefill (T > 1) launches a variant whose warps take 4 tokens each, so the
// weights are read ceil(T / 4) times rather than T times.
//
//===----------------------------------------------------------------------===//

#include "GPUStepLowering.h"

#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace mlir::kiln;

namespace {

constexpr int64_t kWarpsPerBlock = 4;
/// Tokens a prefill warp multiplies each decoded weight chunk with.
constexpr int64_t kPrefillTokens = 4;

/// The GEMV over `tokens` tokens per warp: 1 for decode (T = 1; four
/// accumulators over the chunk's values), kPrefillTokens for prefill (one
/// accumulator per token; rows past T are clamped on read, skipped on write).
int64_t gemvKernel(GPUKernelLibrary &kernels, const GPUWeightDecoder &decoder,
                   int64_t n, int64_t k, bool bias, bool residual,
                   int64_t tokens) {
  std::string name = llvm::formatv("kiln_gemv_{0}_{1}x{2}{3}{4}{5}",
                                   decoder.getName(), n, k,
                                   bias ? "_bias" : "",
                                   residual ? "_residual" : "",
                                   tokens > 1 ? "_t" + std::to_string(tokens)
                                              : std::string());
  SmallVector<KernelArg> args = {{"x", KernelArgKind::Buffer},
                                 {"w", KernelArgKind::Buffer}};
  if (bias)
    args.push_back({"bias", KernelArgKind::Buffer});
  if (residual)
    args.push_back({"residual", KernelArgKind::Buffer});
  args.push_back({"y", KernelArgKind::Buffer});
  if (tokens > 1)
    args.push_back({"tokens", KernelArgKind::Index});
  return kernels.get(name, args, [&](GPUKernelBuilder &kb) {
    ImplicitLocOpBuilder &b = kb.b;
    Type f32 = b.getF32Type();
    Value x4 = kb.view("x", VectorType::get({4}, f32));
    Value y = kb.view("y", f32);
    Value lane = kb.lane();
    Value row = kb.add(kb.mul(kb.blockIdx(gpu::Dimension::x),
                              kb.idx(kWarpsPerBlock)),
                       kb.warp());
    Value t0 = kb.mul(kb.blockIdx(gpu::Dimension::y), kb.idx(tokens));
    SmallVector<Value> xBases;
    for (int64_t i = 0; i < tokens; ++i) {
      Value t = kb.add(t0, kb.idx(i));
      if (tokens > 1)
        t = kb.minu(t, kb.sub(kb.arg("tokens"), kb.idx(1)));
      xBases.push_back(kb.mul(t, kb.idx(k / 4)));
    }
    int64_t chains = tokens > 1 ? tokens : 4;
    kb.ifThen(kb.ult(row, kb.idx(n)), [&] {
      Value rowBase = kb.mul(row, kb.idx(decoder.getRowBytes()));
      SmallVector<Value> zeros(chains, kb.f(0.0f));
      auto scan = kb.loop(
          lane, kb.idx(k / GPUWeightDecoder::kChunkValues), kb.idx(kWarpSize),
          zeros, [&](Value chunk, ValueRange acc) {
            SmallVector<Value> w = decoder.decode(kb, "w", rowBase, chunk);
            SmallVector<Value> sums(acc.begin(), acc.end());
            for (int64_t tt = 0; tt < tokens; ++tt) {
              Value first = kb.add(xBases[tt], kb.mul(chunk, kb.idx(8)));
              for (int64_t i = 0; i < 8; ++i) {
                Value xv = kb.load(x4, kb.add(first, kb.idx(i)));
                for (int64_t j = 0; j < 4; ++j) {
                  int64_t c = tokens > 1 ? tt : j;
                  sums[c] = kb.fma(w[4 * i + j],
                                   vector::ExtractOp::create(b, xv, j), sums[c]);
                }
              }
            }
            return sums;
          });
      SmallVector<Value> totals;
      if (tokens > 1) {
        for (int64_t tt = 0; tt < tokens; ++tt)
          totals.push_back(kb.warpSum(scan.getResult(tt)));
      } else {
        totals.push_back(kb.warpSum(
            kb.add(kb.add(scan.getResult(0), scan.getResult(1)),
                   kb.add(scan.getResult(2), scan.getResult(3)))));
      }
      kb.ifThen(arith::CmpIOp::create(b, arith::CmpIPredicate::eq, lane,
                                      kb.idx(0)),
                [&] {
                  for (int64_t tt = 0; tt < tokens; ++tt) {
                    Value t = kb.add(t0, kb.idx(tt));
                    auto store = [&] {
                      Value out = kb.add(kb.mul(t, kb.idx(n)), row);
                      Value v = totals[tt];
                      if (bias)
                        v = kb.add(v, kb.load(kb.view("bias", f32), row));
                      if (residual)
                        v = kb.add(v, kb.load(kb.view("residual", f32), out));
                      kb.store(v, y, out);
                    };
                    if (tokens > 1)
                      kb.ifThen(kb.ult(t, kb.arg("tokens")), store);
                    else
                      store();
                  }
                });
    });
  });
}

struct LinearLowering : GPUKernelPattern<LinearOp> {
  LogicalResult lower(LinearOp l, GPUStepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    Operation *op = l;
    // kiln-lower-to-cuda runs kiln-fuse with rope-epilogue=false.
    if (l.getRope())
      return l.emitOpError("has a rope epilogue, which the GPU lowering does "
                           "not fuse yet; run kiln-fuse{rope-epilogue=false}");
    if (l.getActivationBits())
      return l.emitOpError("has quantized activations, which the GPU kernels "
                           "do not take yet; run "
                           "kiln-fuse{activation-bits=0}");
    if (failed(step.requireRowsF32(op, l.getInput().getType(), 32)) ||
        failed(step.requireRowsF32(op, l.getResult().getType(), 1)))
      return failure();
    auto w = step.weightOf(l.getWeight(), op);
    if (failed(w))
      return failure();
    auto decoder = step.decoderOf(op, w->type);
    if (failed(decoder))
      return failure();
    std::optional<WeightRef> bias;
    if (l.getBias()) {
      auto bw = step.weightOf(l.getBias(), op);
      if (failed(bw))
        return failure();
      if (!bw->type.getElementType() || !bw->type.getElementType().isF32())
        return l.emitOpError("the GPU lowering needs an f32 bias");
      bias = *bw;
    }
    int64_t n = w->type.getShape()[0], k = w->type.getShape()[1];
    Value x = step.mapped(l.getInput());
    Value y = step.resultBuffer(l.getResult(), x, b);
    SmallVector<Value> args = {x, step.weightBuffer(*w, b)};
    if (bias)
      args.push_back(step.weightBuffer(*bias, b));
    if (l.getResidual())
      args.push_back(step.mapped(l.getResidual()));
    args.push_back(y);
    // Decode (T = 1) and prefill launch different kernels.
    Value tokens = step.rowsOf(x, b);
    Value blocks = GPUStepLowering::ceilDiv(idx(b, n), kWarpsPerBlock, b);
    auto decode = scf::IfOp::create(
        b, arith::CmpIOp::create(b, arith::CmpIPredicate::eq, tokens, idx(b, 1)),
        /*withElseRegion=*/true);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPoint(decode.thenBlock()->getTerminator());
      step.launch(gemvKernel(step.kernels, **decoder, n, k, bias.has_value(),
                             bool(l.getResidual()), 1),
                  {blocks, idx(b, 1), idx(b, 1)},
                  {kWarpsPerBlock * kWarpSize, 1, 1}, args, b);
      b.setInsertionPoint(decode.elseBlock()->getTerminator());
      args.push_back(tokens);
      step.launch(gemvKernel(step.kernels, **decoder, n, k, bias.has_value(),
                             bool(l.getResidual()), kPrefillTokens),
                  {blocks, GPUStepLowering::ceilDiv(tokens, kPrefillTokens, b),
                   idx(b, 1)},
                  {kWarpsPerBlock * kWarpSize, 1, 1}, args, b);
    }
    step.bind(l.getResult(), y);
    return success();
  }
  static Value idx(ImplicitLocOpBuilder &b, int64_t v) {
    return arith::ConstantIndexOp::create(b, v);
  }
};

} // namespace

void mlir::kiln::populateGPULinearPatterns(GPUKernelPatterns &patterns) {
  patterns.add<LinearLowering>();
}
