//===- Linear.cpp - kiln.linear as a GEMV with fused dequantization -------===//
//
// Each lane decodes whole 32-value chunks of a weight row in registers
// (GPUWeightDecoder), multiplies them with the activations into f32
// accumulators, and a shuffle-xor reduction sums the lanes; lane 0 adds bias
// and kiln-fuse's residual.
//
// Decode (T = 1) stages in shared memory first, when they fit: the block's
// activations (XOR-swizzled, so the lanes' 128-bit reads of their chunks hit
// distinct banks) and each warp's 1 or 2 weight rows, copied with the widest
// coalesced loads the row size allows (ld.global.v4 for rows of a multiple of
// 16 bytes), all issued before the first store. Read straight from global
// memory, each lane's chunk is 128 bytes away from its neighbour's, and the
// strided activation reads held the H200 at 11-34% of its bandwidth. Two
// rows per warp read the staged activations once for both.
// Weights in the split layout (#kiln_gpu.split) are not staged: their codes
// are read from global memory with one 128-bit load per lane and chunk, a
// warp's loads 512 contiguous bytes, several chunks of each row before the
// first multiply so that the loads are in flight together. Activations too
// large for shared memory (K = 14336, an 8B model's down projection) are
// staged a segment of K at a time: read through L1 instead, 8 bytes of
// activations per byte of Q4_0 codes, that kernel ran at a third of the
// bandwidth of the staged ones (637 against 2043 GB/s on the H200).
// Prefill (T > 1) launches a variant whose warps take 4 tokens each, so the
// weights are read ceil(T / 4) times rather than T times; from 16 tokens on,
// weights that have one run the tensor-core GEMM of LinearMma.cpp instead.
//
//===----------------------------------------------------------------------===//

#include "GPUStepLowering.h"

#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/Support/FormatVariadic.h"

#include <optional>

using namespace mlir;
using namespace mlir::kiln;

namespace {

constexpr int64_t kWarpsPerBlock = 4;
/// Tokens a prefill warp multiplies each decoded weight chunk with.
constexpr int64_t kPrefillTokens = 4;
/// Static shared memory a block may have.
constexpr int64_t kSharedBytes = 48 * 1024;
/// At most this many staging loads per lane (unrolled).
constexpr int64_t kMaxLoadsPerLane = 16;
/// Matrices with fewer rows keep one row per warp, for more blocks.
constexpr int64_t kMinRowsForPairs = 2048;

/// Weight loads a lane of the split-layout GEMV has in flight at most (its
/// rows times the chunks of each it decodes before multiplying).
constexpr int64_t kMaxChunksInFlight = 4;

/// How the staged decode GEMV reads its weight rows: copied to shared memory
/// with `unit`-byte loads into `slotBytes` slots (stageWeights), or straight
/// from global memory `unroll` chunks of each row at a time (the split
/// layout, whose 128-bit loads are coalesced already); `rowsPerWarp` rows per
/// warp. The activations are staged `segmentChunks` chunks at a time (all of
/// K when they fit; only the split layout's kernel takes segments).
struct StagedGemv {
  int64_t unit, slotBytes, rowsPerWarp;
  bool stageWeights;
  int64_t unroll;
  int64_t segmentChunks;
};

/// The staged decode GEMV for the weight rows `decoder` reads, starting at
/// byte `offset` of the weights, or nothing when they do not fit.
std::optional<StagedGemv> planStagedGemv(int64_t n, int64_t k,
                                         const GPUWeightDecoder &decoder,
                                         int64_t offset) {
  int64_t rowBytes = decoder.getRowBytes();
  if (!decoder.rowIsContiguous()) {
    // Device allocations are 256-byte aligned: the offset fixes the
    // alignment of the 128-bit loads.
    if (offset % 16 != 0)
      return std::nullopt;
    int64_t rows = n >= kMinRowsForPairs ? 2 : 1;
    // Whole warps' worth of chunks per step, as many as divide the row.
    int64_t chunks = k / GPUWeightDecoder::kChunkValues, unroll = 1;
    while (chunks % (kWarpSize * unroll * 2) == 0 &&
           rows * unroll * 2 <= kMaxChunksInFlight)
      unroll *= 2;
    // Segments of whole steps, as few and as even as the staging allows.
    int64_t step = kWarpSize * unroll;
    int64_t maxValues = std::min(kSharedBytes / 4, kWarpsPerBlock * kWarpSize *
                                                       kMaxLoadsPerLane * 4);
    int64_t maxSegment =
        maxValues / GPUWeightDecoder::kChunkValues / step * step;
    int64_t segments = (chunks + maxSegment - 1) / maxSegment;
    int64_t segmentChunks =
        segments == 1 ? chunks
                      : ((chunks + segments - 1) / segments + step - 1) /
                            step * step;
    // Unstaged rows are the split layout's, whose decoder has decodeScaled.
    return StagedGemv{16, 0, rows, /*stageWeights=*/false, unroll,
                      segmentChunks};
  }
  // Device allocations are 256-byte aligned: the offset fixes the alignment.
  if (offset % 16 != 0 || rowBytes % 2 != 0)
    return std::nullopt;
  int64_t unit = rowBytes % 16 == 0 ? 16
                 : rowBytes % 8 == 0 ? 8
                 : rowBytes % 4 == 0 ? 4
                                     : 2;
  if (rowBytes / unit > kWarpSize * kMaxLoadsPerLane ||
      k / 4 > kWarpsPerBlock * kWarpSize * kMaxLoadsPerLane)
    return std::nullopt;
  int64_t slotBytes = (rowBytes + 15) / 16 * 16;
  for (int64_t rows : {2, 1}) {
    if (rows == 2 && n < kMinRowsForPairs)
      continue;
    if (4 * k + kWarpsPerBlock * rows * slotBytes <= kSharedBytes)
      return StagedGemv{unit, slotBytes, rows, /*stageWeights=*/true, 1,
                        k / GPUWeightDecoder::kChunkValues};
  }
  return std::nullopt;
}

/// The type of one `unit`-byte staging load.
Type unitType(ImplicitLocOpBuilder &b, int64_t unit) {
  if (unit >= 8)
    return VectorType::get({unit / 4}, b.getI32Type());
  return b.getIntegerType(8 * unit);
}

/// A copy of `count` elements into shared memory by `threads` threads, each
/// taking every `threads`-th from its own: all loads are issued (load) before
/// the first store (store), so they are in flight at once.
struct StagedCopy {
  StagedCopy(int64_t count, int64_t threads) : count(count), threads(threads) {}

  void load(GPUKernelBuilder &kb, Value src, Value srcFirst, Value thread) {
    for (int64_t i = 0; i * threads < count; ++i) {
      // Past the end, a thread copies the last element again (the same
      // value to the same place): no branch, so no load waits for a store.
      at.push_back(kb.minu(kb.add(thread, kb.idx(i * threads)),
                           kb.idx(count - 1)));
      values.push_back(kb.load(src, kb.add(srcFirst, at.back())));
    }
  }
  /// Element i goes to dst[dstFirst + place(i)].
  void store(GPUKernelBuilder &kb, Value dst, Value dstFirst,
             llvm::function_ref<Value(Value)> place) {
    for (size_t i = 0; i < at.size(); ++i)
      kb.store(values[i], dst, kb.add(dstFirst, place(at[i])));
  }

private:
  int64_t count, threads;
  SmallVector<Value> at, values;
};

/// The staged decode GEMV (see the file comment).
int64_t stagedGemvKernel(GPUKernelLibrary &kernels,
                         const GPUWeightDecoder &decoder, int64_t n, int64_t k,
                         bool bias, bool residual, const StagedGemv &plan) {
  int64_t chunks = k / GPUWeightDecoder::kChunkValues;
  int64_t segmentChunks = plan.segmentChunks;
  int64_t segments = (chunks + segmentChunks - 1) / segmentChunks;
  std::string name = llvm::formatv(
      "kiln_gemv_{0}_{1}x{2}{3}{4}{5}{6}", decoder.getName(), n, k,
      bias ? "_bias" : "", residual ? "_residual" : "",
      plan.rowsPerWarp == 2 ? "_r2" : "",
      segments > 1 ? llvm::formatv("_seg{0}", segments).str() : "");
  SmallVector<KernelArg> args = linearKernelArgs(bias, residual);
  return kernels.get(name, args, [&](GPUKernelBuilder &kb) {
    ImplicitLocOpBuilder &b = kb.b;
    Type f32 = b.getF32Type();
    Type v4f32 = VectorType::get({4}, f32);
    int64_t rowsPerWarp = plan.rowsPerWarp;
    int64_t rowBytes = decoder.getRowBytes();
    int64_t slotUnits = plan.slotBytes / plan.unit;
    Value xs = kb.sharedArray(segmentChunks * 8, v4f32);
    Value ws =
        plan.stageWeights
            ? kb.sharedArray(kWarpsPerBlock * rowsPerWarp * plan.slotBytes,
                             b.getI8Type())
            : Value();
    Value lane = kb.lane(), warp = kb.warp();
    Value firstRow = kb.mul(
        kb.add(kb.mul(kb.blockIdx(gpu::Dimension::x), kb.idx(kWarpsPerBlock)),
               warp),
        kb.idx(rowsPerWarp));
    // The 16-byte group g of chunk c goes to 8c + (g ^ (c & 7)).
    auto swizzle = [&](Value i) {
      return kb.xorI(i, kb.andI(kb.shrU(i, kb.idx(3)), kb.idx(7)));
    };
    // The loads of the activations of the segment from chunk `first` on.
    auto loadSegment = [&](int64_t first) {
      StagedCopy copy(std::min(segmentChunks, chunks - first) * 8,
                      kWarpsPerBlock * kWarpSize);
      copy.load(kb, kb.view("x", v4f32), kb.idx(first * 8), kb.threadIdx());
      return copy;
    };
    StagedCopy xCopy = loadSegment(0);
    // Rows past n read row n - 1, whose results are not stored; their warps
    // still take part in the block's barriers.
    SmallVector<Value> rows;
    for (int64_t r = 0; r < rowsPerWarp; ++r)
      rows.push_back(kb.minu(kb.add(firstRow, kb.idx(r)), kb.idx(n - 1)));
    SmallVector<StagedCopy> rowCopies;
    if (plan.stageWeights) {
      Type unit = unitType(b, plan.unit);
      Value wGlobal = kb.view("w", unit), wShared = kb.view(ws, unit);
      for (int64_t r = 0; r < rowsPerWarp; ++r) {
        rowCopies.emplace_back(rowBytes / plan.unit, kWarpSize);
        rowCopies.back().load(
            kb, wGlobal, kb.mul(rows[r], kb.idx(rowBytes / plan.unit)), lane);
      }
      xCopy.store(kb, xs, kb.idx(0), swizzle);
      for (int64_t r = 0; r < rowsPerWarp; ++r) {
        Value slot = kb.add(kb.mul(warp, kb.idx(rowsPerWarp)), kb.idx(r));
        rowCopies[r].store(kb, wShared, kb.mul(slot, kb.idx(slotUnits)),
                           [](Value i) { return i; });
      }
    } else {
      xCopy.store(kb, xs, kb.idx(0), swizzle);
    }
    kb.barrier();
    {
      SmallVector<Value> sums(4 * rowsPerWarp, kb.f(0.0f));
      // The staged activations of a chunk of the segment from `first`,
      // unswizzled. A lane's chunks are first + lane + 32 i, and segments
      // start at multiples of 32 chunks, so chunk & 7 is lane & 7: computed
      // once, out of the loop.
      Value turn = kb.andI(lane, kb.idx(7));
      int64_t first = 0;
      auto activations = [&](Value chunk) {
        Value at = kb.mul(kb.sub(chunk, kb.idx(first)), kb.idx(8));
        SmallVector<Value> xv;
        for (int64_t i = 0; i < 8; ++i)
          xv.push_back(kb.load(xs, kb.add(at, kb.xorI(kb.idx(i), turn))));
        return xv;
      };
      auto accumulate = [&](ArrayRef<Value> w, ArrayRef<Value> xv,
                            MutableArrayRef<Value> sums) {
        for (int64_t i = 0; i < 8; ++i)
          for (int64_t j = 0; j < 4; ++j)
            sums[j] = kb.fma(w[4 * i + j],
                             vector::ExtractOp::create(b, xv[i], j), sums[j]);
      };
      SmallVector<Value> rowBases;
      for (Value row : rows)
        rowBases.push_back(kb.mul(row, kb.idx(rowBytes)));
      auto body = [&](Value chunk, ValueRange acc) {
        SmallVector<Value> sums(acc.begin(), acc.end());
        if (plan.stageWeights) {
          SmallVector<Value> xv = activations(chunk);
          for (int64_t r = 0; r < rowsPerWarp; ++r) {
            Value slot = kb.add(kb.mul(warp, kb.idx(rowsPerWarp)), kb.idx(r));
            SmallVector<Value> w = decoder.decode(
                kb, ws, kb.mul(slot, kb.idx(plan.slotBytes)), chunk);
            accumulate(w, xv, MutableArrayRef(sums).slice(4 * r, 4));
          }
          return sums;
        }
        // Every weight load of the step before the first multiply, so
        // they are in flight together.
        SmallVector<ScaledChunk> w;
        for (int64_t u = 0; u < plan.unroll; ++u)
          for (int64_t r = 0; r < rowsPerWarp; ++r)
            w.push_back(*decoder.decodeScaled(
                kb, kb.arg("w"), rowBases[r],
                kb.add(chunk, kb.idx(u * kWarpSize))));
        for (int64_t u = 0; u < plan.unroll; ++u) {
          SmallVector<Value> xv =
              activations(kb.add(chunk, kb.idx(u * kWarpSize)));
          // Sum over the chunk of (scale * code + min) x = scale * the
          // codes' products + min * the activations' sum.
          Value xSum;
          if (w[u * rowsPerWarp].min) {
            Value v = xv[0];
            for (int64_t i = 1; i < 8; ++i)
              v = arith::AddFOp::create(b, v, xv[i]);
            xSum = vector::ExtractOp::create(b, v, 0);
            for (int64_t j = 1; j < 4; ++j)
              xSum = kb.add(xSum, vector::ExtractOp::create(b, v, j));
          }
          for (int64_t r = 0; r < rowsPerWarp; ++r) {
            const ScaledChunk &c = w[u * rowsPerWarp + r];
            SmallVector<Value> products(4);
            for (int64_t i = 0; i < 8; ++i)
              for (int64_t j = 0; j < 4; ++j) {
                Value x = vector::ExtractOp::create(b, xv[i], j);
                products[j] = i == 0
                                  ? kb.mul(c.codes[j], x)
                                  : kb.fma(c.codes[4 * i + j], x, products[j]);
              }
            for (int64_t j = 0; j < 4; ++j)
              sums[4 * r + j] = kb.fma(products[j], c.scale, sums[4 * r + j]);
            if (c.min)
              sums[4 * r] = kb.fma(c.min, xSum, sums[4 * r]);
          }
        }
        return sums;
      };
      for (; first < chunks; first += segmentChunks) {
        if (first > 0) {
          // Every warp is done with the previous segment.
          kb.barrier();
          loadSegment(first).store(kb, xs, kb.idx(0), swizzle);
          kb.barrier();
        }
        auto scan = kb.loop(kb.add(lane, kb.idx(first)),
                            kb.idx(std::min(first + segmentChunks, chunks)),
                            kb.idx(kWarpSize * plan.unroll), sums, body);
        sums.assign(scan.getResults().begin(), scan.getResults().end());
      }
      SmallVector<Value> totals;
      for (int64_t r = 0; r < rowsPerWarp; ++r)
        totals.push_back(kb.warpSum(kb.add(kb.add(sums[4 * r], sums[4 * r + 1]),
                                           kb.add(sums[4 * r + 2],
                                                  sums[4 * r + 3]))));
      Value y = kb.view("y", f32);
      Value storing = arith::AndIOp::create(
          b,
          arith::CmpIOp::create(b, arith::CmpIPredicate::eq, lane, kb.idx(0)),
          kb.ult(firstRow, kb.idx(n)));
      kb.ifThen(storing, [&] {
        for (int64_t r = 0; r < rowsPerWarp; ++r) {
          Value row = kb.add(firstRow, kb.idx(r));
          auto store = [&] {
            Value v = totals[r];
            if (bias)
              v = kb.add(v, kb.load(kb.view("bias", f32), row));
            if (residual)
              v = kb.add(v, kb.load(kb.view("residual", f32), row));
            kb.store(v, y, row);
          };
          if (r > 0 && n % rowsPerWarp != 0)
            kb.ifThen(kb.ult(row, kb.idx(n)), store);
          else
            store();
        }
      });
    }
  });
}

/// The GEMV over `tokens` tokens per warp: 1 for decode (T = 1; four
/// accumulators over the chunk's values), kPrefillTokens for prefill (one
/// accumulator per token; rows past T are clamped on read, skipped on write).
int64_t gemvKernel(GPUKernelLibrary &kernels, const GPUWeightDecoder &decoder,
                   int64_t n, int64_t k, bool bias, bool residual,
                   int64_t tokens) {
  // The decode variant of this kernel serves weights the staged one cannot.
  std::string name = llvm::formatv("kiln_gemv_{0}_{1}x{2}{3}{4}{5}",
                                   decoder.getName(), n, k,
                                   bias ? "_bias" : "",
                                   residual ? "_residual" : "",
                                   tokens > 1 ? "_t" + std::to_string(tokens)
                                              : std::string("_unstaged"));
  SmallVector<KernelArg> args = linearKernelArgs(bias, residual);
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
            SmallVector<Value> w =
                decoder.decode(kb, kb.arg("w"), rowBase, chunk);
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
    auto decoder = step.decoderOf(op, *w);
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
      if (auto plan = planStagedGemv(n, k, **decoder, w->offset)) {
        Value stagedBlocks = GPUStepLowering::ceilDiv(
            idx(b, n), kWarpsPerBlock * plan->rowsPerWarp, b);
        step.launch(stagedGemvKernel(step.kernels, **decoder, n, k,
                                     bias.has_value(), bool(l.getResidual()),
                                     *plan),
                    {stagedBlocks, idx(b, 1), idx(b, 1)},
                    {kWarpsPerBlock * kWarpSize, 1, 1}, args, b);
      } else {
        step.launch(gemvKernel(step.kernels, **decoder, n, k, bias.has_value(),
                               bool(l.getResidual()), 1),
                    {blocks, idx(b, 1), idx(b, 1)},
                    {kWarpsPerBlock * kWarpSize, 1, 1}, args, b);
      }
      b.setInsertionPoint(decode.elseBlock()->getTerminator());
      args.push_back(tokens);
      auto prefillGemv = [&] {
        step.launch(
            gemvKernel(step.kernels, **decoder, n, k, bias.has_value(),
                       bool(l.getResidual()), kPrefillTokens),
            {blocks, GPUStepLowering::ceilDiv(tokens, kPrefillTokens, b),
             idx(b, 1)},
            {kWarpsPerBlock * kWarpSize, 1, 1}, args, b);
      };
      int64_t maxTokens = step.getMaxTokens();
      if (hasLinearMma(*w) &&
          (!maxTokens || maxTokens >= kLinearMmaMinTokens)) {
        // Enough tokens for tensor cores: the GEMM; fewer: the GEMV.
        auto mma = scf::IfOp::create(
            b,
            arith::CmpIOp::create(b, arith::CmpIPredicate::uge, tokens,
                                  idx(b, kLinearMmaMinTokens)),
            /*withElseRegion=*/true);
        b.setInsertionPoint(mma.thenBlock()->getTerminator());
        launchLinearMma(step, *w, bias.has_value(), bool(l.getResidual()),
                        args, tokens, maxTokens, b);
        b.setInsertionPoint(mma.elseBlock()->getTerminator());
      }
      prefillGemv();
    }
    step.bind(l.getResult(), y);
    return success();
  }
  static Value idx(ImplicitLocOpBuilder &b, int64_t v) {
    return arith::ConstantIndexOp::create(b, v);
  }
};

} // namespace

SmallVector<KernelArg> mlir::kiln::linearKernelArgs(bool bias, bool residual) {
  SmallVector<KernelArg> args = {{"x", KernelArgKind::Buffer},
                                 {"w", KernelArgKind::Buffer}};
  if (bias)
    args.push_back({"bias", KernelArgKind::Buffer});
  if (residual)
    args.push_back({"residual", KernelArgKind::Buffer});
  args.push_back({"y", KernelArgKind::Buffer});
  return args;
}

void mlir::kiln::populateGPULinearPatterns(GPUKernelPatterns &patterns) {
  patterns.add<LinearLowering>();
}
