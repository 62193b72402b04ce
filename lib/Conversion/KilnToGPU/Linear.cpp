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
// activations per byte of Q4_0 codes, that kernel took 37.9 us at 4096 x
// 14336 against 18.3 us in two segments (H100, same call).
// With int8 activations (kiln-fuse's activation_bits, kiln-compile's
// default), decode over the split layout first quantizes x per 32 values as
// ggml's q8_1 and the CPU's int8 kernels do (kiln_quantize_a<bits>, into the
// step's workspace; consecutive layers over one input, like Q, K and V,
// quantize it once, and not at all where the norm or SwiGLU kernel that
// wrote it also wrote it quantized: emitQuantizeQuad), then multiplies the
// codes with dp4a, 4 products an instruction, where the f32 kernel spends
// three instructions a weight (prmt, fsub, ffma): ncu put that kernel at 2.6
// instructions a cycle and 53% of the H100's DRAM bandwidth at 14336 x
// 4096. Prefill keeps x in f32 (f16 on tensor cores): at many tokens the
// product is not bound by decoding, and f16 is the finer of the two.
// Prefill (T > 1) launches a variant whose warps take 4 tokens each, so the
// weights are read ceil(T / 4) times rather than T times; from 16 tokens on,
// weights that have one run the tensor-core GEMM of LinearMma.cpp instead.
//
//===----------------------------------------------------------------------===//

#include "GPUStepLowering.h"

#include "Conversion/KilnToGPU/IR/KilnGPUDialect.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
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
/// rows times the chunks of each it decodes before multiplying). The int8
/// GEMV holds twice that (the next step's loads too); 8 measured no faster
/// on the H100, and at 4096 x 4096 leaves one step, nothing to pipeline.
constexpr int64_t kMaxChunksInFlight = 4;
/// Threads of the activation quantization kernel's blocks.
constexpr int64_t kQuantizeThreads = 128;

/// Where kiln_quantize_a<bits> leaves one token's K activations and the
/// int8 GEMV finds them: the codes (int8, 32 a block) from byte 0, then
/// 16-byte aligned arrays with one entry a block: its scale (f32, rounded to
/// f16), the sum of its codes (i32) and the scale times that sum (f32,
/// rounded to f16: ggml q8_1's s, for formats with a min).
struct QuantizedActivations {
  int64_t k;
  int64_t blocks() const { return k / GPUWeightDecoder::kChunkValues; }
  int64_t arrayBytes() const { return llvm::alignTo(blocks() * 4, 16); }
  int64_t scalesAt() const { return k; }
  int64_t sumsAt() const { return k + arrayBytes(); }
  int64_t scaledSumsAt() const { return k + 2 * arrayBytes(); }
  int64_t bytes() const { return k + 3 * arrayBytes(); }
};

/// How the staged decode GEMV reads its weight rows: copied to shared memory
/// with `unit`-byte loads into `slotBytes` slots (stageWeights), or straight
/// from global memory `unroll` chunks of each row at a time (the split
/// layout, whose 128-bit loads are coalesced already); `rowsPerWarp` rows per
/// warp. The activations are staged `segmentChunks` chunks at a time (all of
/// K when they fit; only the split layout's kernel takes segments), or,
/// `quantized`, as QuantizedActivations all at once.
struct StagedGemv {
  int64_t unit, slotBytes, rowsPerWarp;
  bool stageWeights;
  int64_t unroll;
  int64_t segmentChunks;
  bool quantized = false;
};

/// The staged decode GEMV for the weight rows `decoder` reads, starting at
/// byte `offset` of the weights, over f32 or (`quantized`) int8
/// activations, or nothing when they do not fit. `pairs` asks for two rows
/// a warp whatever n (a rope epilogue rotates pairs of rows).
std::optional<StagedGemv> planStagedGemv(int64_t n, int64_t k,
                                         const GPUWeightDecoder &decoder,
                                         int64_t offset, bool quantized,
                                         bool pairs) {
  int64_t rowBytes = decoder.getRowBytes();
  if (quantized &&
      (!decoder.hasCodes() || offset % 16 != 0 ||
       QuantizedActivations{k}.bytes() > kSharedBytes))
    return std::nullopt;
  if (!decoder.rowIsContiguous()) {
    // Device allocations are 256-byte aligned: the offset fixes the
    // alignment of the 128-bit loads.
    if (offset % 16 != 0)
      return std::nullopt;
    int64_t rows = n >= kMinRowsForPairs || pairs ? 2 : 1;
    // Whole warps' worth of chunks per step, as many as divide the row.
    int64_t chunks = k / GPUWeightDecoder::kChunkValues, unroll = 1;
    while (chunks % (kWarpSize * unroll * 2) == 0 &&
           rows * unroll * 2 <= kMaxChunksInFlight)
      unroll *= 2;
    if (quantized)
      return StagedGemv{16, 0, rows, /*stageWeights=*/false, unroll, chunks,
                        /*quantized=*/true};
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
    if (rows == 2 && n < kMinRowsForPairs && !pairs)
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

/// The staged decode GEMV (see the file comment); with `rope` (two rows a
/// warp), the rotation of kiln-fuse's rope epilogue: a warp's rows are a
/// llama-style pair, rotated by lane 0 from position argument "position".
int64_t stagedGemvKernel(GPUKernelLibrary &kernels,
                         const GPUWeightDecoder &decoder, int64_t n, int64_t k,
                         bool bias, bool residual, const StagedGemv &plan,
                         RopeAttr rope) {
  assert((!rope || (plan.rowsPerWarp == 2 && !residual)) &&
         "a rope epilogue rotates a warp's two rows");
  int64_t chunks = k / GPUWeightDecoder::kChunkValues;
  int64_t segmentChunks = plan.segmentChunks;
  int64_t segments = (chunks + segmentChunks - 1) / segmentChunks;
  std::string name = llvm::formatv(
      "kiln_gemv_{0}_{1}x{2}{3}{4}{5}{6}{7}", decoder.getName(), n, k,
      bias ? "_bias" : "", residual ? "_residual" : "",
      plan.rowsPerWarp > 1 ? "_r" + std::to_string(plan.rowsPerWarp) : "",
      segments > 1 ? llvm::formatv("_seg{0}", segments).str() : "",
      plan.quantized ? "_q8" : "");
  SmallVector<KernelArg> args = linearKernelArgs(bias, residual);
  if (rope) {
    name += llvm::formatv("_rope{0}_b{1}_s{2}", rope.getHeadDim(),
                          floatKey(rope.getFreqBase().convertToFloat()),
                          floatKey(rope.getFreqScale().convertToFloat()));
    args.push_back({"position", KernelArgKind::Index});
  }
  return kernels.get(name, args, [&](GPUKernelBuilder &kb) {
    ImplicitLocOpBuilder &b = kb.b;
    Type f32 = b.getF32Type();
    Type i32 = b.getI32Type();
    Type v4f32 = VectorType::get({4}, f32), v4i32 = VectorType::get({4}, i32);
    int64_t rowsPerWarp = plan.rowsPerWarp;
    int64_t rowBytes = decoder.getRowBytes();
    int64_t slotUnits = plan.slotBytes / plan.unit;
    QuantizedActivations qx{k};
    // Quantized activations are bytes seen as words, scales and sums.
    Value xBytes =
        plan.quantized ? kb.sharedArray(qx.bytes(), b.getI8Type()) : Value();
    Value xs = plan.quantized ? kb.view(xBytes, v4i32)
                              : kb.sharedArray(segmentChunks * 8, v4f32);
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
    // f32: the 16-byte group g of chunk c goes to 8c + (g ^ (c & 7)).
    // Quantized: half h of chunk c's codes goes to 2c + (h ^ (c >> 2 & 1)),
    // the other arrays as they are.
    auto swizzle = [&](Value i) {
      if (plan.quantized)
        return kb.select(
            kb.ult(i, kb.idx(k / 16)),
            kb.xorI(i, kb.andI(kb.shrU(i, kb.idx(3)), kb.idx(1))), i);
      return kb.xorI(i, kb.andI(kb.shrU(i, kb.idx(3)), kb.idx(7)));
    };
    // The loads of the activations of the segment from chunk `first` on.
    auto loadSegment = [&](int64_t first) {
      if (plan.quantized) {
        StagedCopy copy(qx.bytes() / 16, kWarpsPerBlock * kWarpSize);
        copy.load(kb, kb.view("x", v4i32), kb.idx(0), kb.threadIdx());
        return copy;
      }
      StagedCopy copy(std::min(segmentChunks, chunks - first) * 8,
                      kWarpsPerBlock * kWarpSize);
      copy.load(kb, kb.view("x", v4f32), kb.idx(first * 8), kb.threadIdx());
      return copy;
    };
    // Rows past n read row n - 1, whose results are not stored; their warps
    // still take part in the block's barriers.
    SmallVector<Value> rows, rowBases;
    for (int64_t r = 0; r < rowsPerWarp; ++r) {
      rows.push_back(kb.minu(kb.add(firstRow, kb.idx(r)), kb.idx(n - 1)));
      rowBases.push_back(kb.mul(rows.back(), kb.idx(rowBytes)));
    }
    // The (row base, chunk) pairs of the step from `chunk`, unrolled chunk
    // by chunk, row by row: the order of every step's loads.
    auto forEachInStep = [&](Value chunk,
                             llvm::function_ref<void(Value, Value)> fn) {
      for (int64_t u = 0; u < plan.unroll; ++u)
        for (int64_t r = 0; r < rowsPerWarp; ++r)
          fn(rowBases[r], kb.add(chunk, kb.idx(u * kWarpSize)));
    };
    // Over quantized activations the loop is software-pipelined: a step's
    // code loads are issued a step ahead, the first ones before the
    // activations are staged (they do not wait for the barrier). A step's
    // loads travel as loop state flattened: per (unrolled chunk, row) its
    // code words, scale and min.
    auto loadCodesStep = [&](Value chunk) {
      SmallVector<CodeChunk> step;
      forEachInStep(chunk, [&](Value rowBase, Value c) {
        step.push_back(*decoder.loadCodes(kb, kb.arg("w"), rowBase, c));
      });
      return step;
    };
    auto flatten = [](ArrayRef<CodeChunk> step) {
      SmallVector<Value> flat;
      for (const CodeChunk &c : step) {
        flat.append(c.words.begin(), c.words.end());
        flat.push_back(c.scale);
        if (c.min)
          flat.push_back(c.min);
      }
      return flat;
    };
    SmallVector<CodeChunk> prefetched;
    if (plan.quantized)
      prefetched = loadCodesStep(lane);
    StagedCopy xCopy = loadSegment(0);
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
      // Over quantized activations: per chunk and row, the integer dot
      // product of the codes (dp4a: unsigned nibbles or signed bytes times
      // signed int8), minus 8 times the activation codes' sum for Q4_0, then
      // times both scales, plus Q4_1's min times the activations' q8_1 sum.
      auto multiplyCodes = [&](Value chunk, ArrayRef<CodeChunk> w,
                               SmallVector<Value> sums) {
        auto bytes = [&](Value word) {
          return LLVM::BitcastOp::create(
              b, VectorType::get({4}, b.getI8Type()), word);
        };
        auto dp4a = [&](Value w, bool wSigned, Value x, Value acc) {
          return NVVM::DotAccumulate4WayOp::create(
              b, i32, bytes(w),
              wSigned ? NVVM::DotAccumulateType::SIGNED
                      : NVVM::DotAccumulateType::UNSIGNED,
              bytes(x), NVVM::DotAccumulateType::SIGNED, acc);
        };
        Value f32s = kb.view(xBytes, f32), i32s = kb.view(xBytes, i32);
        // A lane's chunks are lane + 32 i: their halves' swizzle is the
        // lane's.
        Value flip = kb.andI(kb.shrU(kb.lane(), kb.idx(2)), kb.idx(1));
        for (int64_t u = 0; u < plan.unroll; ++u) {
          Value c = kb.add(chunk, kb.idx(u * kWarpSize));
          SmallVector<Value> xw;
          for (int64_t h = 0; h < 2; ++h) {
            Value half = kb.load(
                xs, kb.add(kb.mul(c, kb.idx(2)), kb.xorI(kb.idx(h), flip)));
            for (int64_t i = 0; i < 4; ++i)
              xw.push_back(vector::ExtractOp::create(b, half, i));
          }
          Value xScale = kb.load(f32s, kb.add(kb.idx(qx.scalesAt() / 4), c));
          Value xSum, xScaledSum;
          for (int64_t r = 0; r < rowsPerWarp; ++r) {
            const CodeChunk &code = w[u * rowsPerWarp + r];
            Value dot = kb.i32(0);
            for (int64_t i = 0; i < 4 && code.bits == 4; ++i) {
              Value low = kb.andI(code.words[i], kb.i32(0x0F0F0F0F));
              Value high = kb.andI(kb.shrU(code.words[i], kb.i32(4)),
                                   kb.i32(0x0F0F0F0F));
              dot = dp4a(low, false, xw[i], dot);
              dot = dp4a(high, false, xw[4 + i], dot);
            }
            for (int64_t i = 0; i < 8 && code.bits == 8; ++i)
              dot = dp4a(code.words[i], true, xw[i], dot);
            if (code.offset) {
              if (!xSum)
                xSum = kb.load(i32s, kb.add(kb.idx(qx.sumsAt() / 4), c));
              dot = kb.sub(dot, kb.mul(xSum, kb.i32(code.offset)));
            }
            Value &sum = sums[4 * r + u % 4];
            sum = kb.fma(arith::SIToFPOp::create(b, f32, dot),
                         kb.mul(code.scale, xScale), sum);
            if (code.min) {
              if (!xScaledSum)
                xScaledSum = kb.load(
                    f32s, kb.add(kb.idx(qx.scaledSumsAt() / 4), c));
              sum = kb.fma(code.min, xScaledSum, sum);
            }
          }
        }
        return sums;
      };
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
        forEachInStep(chunk, [&](Value rowBase, Value c) {
          w.push_back(*decoder.decodeScaled(kb, kb.arg("w"), rowBase, c));
        });
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
      if (plan.quantized && chunks == kWarpSize * plan.unroll) {
        // One step: the prefetched loads are all.
        sums = multiplyCodes(lane, prefetched, sums);
        first = chunks;
      } else if (plan.quantized) {
        int64_t step = kWarpSize * plan.unroll;
        SmallVector<Value> state(sums);
        llvm::append_range(state, flatten(prefetched));
        auto scan = kb.loop(
            lane, kb.idx(chunks), kb.idx(step), state,
            [&](Value chunk, ValueRange acc) {
              // The last step loads its own chunks again (cached).
              Value next = kb.add(chunk, kb.idx(step));
              next = kb.select(kb.ult(next, kb.idx(chunks)), next, chunk);
              SmallVector<CodeChunk> loaded = loadCodesStep(next);
              // This step's codes, from the state, shaped as loaded.
              SmallVector<CodeChunk> current(loaded);
              size_t at = sums.size();
              for (CodeChunk &c : current) {
                for (Value &word : c.words)
                  word = acc[at++];
                c.scale = acc[at++];
                if (c.min)
                  c.min = acc[at++];
              }
              SmallVector<Value> nextState = multiplyCodes(
                  chunk, current,
                  SmallVector<Value>(acc.take_front(sums.size())));
              llvm::append_range(nextState, flatten(loaded));
              return nextState;
            });
        sums.assign(scan.getResults().begin(),
                    scan.getResults().begin() + sums.size());
        first = chunks;
      }
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
      Value storing = arith::AndIOp::create(
          b,
          arith::CmpIOp::create(b, arith::CmpIPredicate::eq, lane, kb.idx(0)),
          kb.ult(firstRow, kb.idx(n)));
      kb.ifThen(storing, [&] {
        if (rope) {
          // Rows 2i, 2i + 1 of a head: (v0, v1) rotated by pair i's angle.
          Value v0 = totals[0], v1 = totals[1], next = kb.add(firstRow, kb.idx(1));
          if (bias) {
            Value bv = kb.view("bias", f32);
            v0 = kb.add(v0, kb.load(bv, firstRow));
            v1 = kb.add(v1, kb.load(bv, next));
          }
          Value pair = kb.div(kb.rem(firstRow, kb.idx(rope.getHeadDim())),
                              kb.idx(2));
          Value angle = ropeAngle(kb, rope, pair, kb.arg("position"));
          Value cos = math::CosOp::create(b, angle);
          Value sin = math::SinOp::create(b, angle);
          Value y = kb.view("y", f32);
          kb.store(kb.sub(kb.mul(v0, cos), kb.mul(v1, sin)), y, firstRow);
          kb.store(kb.add(kb.mul(v0, sin), kb.mul(v1, cos)), y, next);
          return;
        }
        for (int64_t r = 0; r < rowsPerWarp; ++r) {
          Value row = kb.add(firstRow, kb.idx(r));
          auto store = [&] {
            storeLinearResult(kb, totals[r], row, row, bias, residual);
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

/// kiln_quantize_a<bits>_<k>(x, q): one token's K activations in f32 to
/// QuantizedActivations in q (emitQuantizeQuad), a thread per four values.
int64_t quantizeActivationsKernel(GPUKernelLibrary &kernels, int64_t k,
                                  int64_t bits) {
  std::string name = llvm::formatv("kiln_quantize_a{0}_{1}", bits, k);
  SmallVector<KernelArg> args = {{"x", KernelArgKind::Buffer},
                                 {"q", KernelArgKind::Buffer}};
  return kernels.get(name, args, [&](GPUKernelBuilder &kb) {
    ImplicitLocOpBuilder &b = kb.b;
    int64_t quads = k / 4;
    Value quad = kb.add(
        kb.mul(kb.blockIdx(gpu::Dimension::x), kb.idx(kQuantizeThreads)),
        kb.threadIdx());
    // Threads past the end repeat the last block (every lane shuffles);
    // they store nothing.
    Value x = kb.load(kb.view("x", VectorType::get({4}, b.getF32Type())),
                      kb.minu(quad, kb.idx(quads - 1)));
    SmallVector<Value> v;
    for (int64_t i = 0; i < 4; ++i)
      v.push_back(vector::ExtractOp::create(b, x, i));
    emitQuantizeQuad(kb, v, quad, kb.ult(quad, kb.idx(quads)), k, bits);
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
                      storeLinearResult(kb, totals[tt], row,
                                        kb.add(kb.mul(t, kb.idx(n)), row),
                                        bias, residual);
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
    RopeAttr rope = l.getRopeAttr();
    if (rope && failed(checkGPURope(op, rope)))
      return failure();
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
      int64_t bits = l.getActivationBits().value_or(0);
      std::optional<StagedGemv> plan;
      if (bits)
        plan = planStagedGemv(n, k, **decoder, w->offset, /*quantized=*/true,
                              bool(rope));
      if (!plan)
        plan = planStagedGemv(n, k, **decoder, w->offset, /*quantized=*/false,
                              bool(rope));
      // The GEMV rotates as it stores where its warps take pairs of rows;
      // elsewhere the rope kernel rotates the product in place.
      bool ropeEpilogue = rope && plan && plan->rowsPerWarp == 2;
      if (plan) {
        SmallVector<Value> gemvArgs(args);
        if (plan->quantized) {
          Value q = step.workspace(b);
          if (step.quantizedInput != x || step.quantizedBits != bits) {
            step.launch(quantizeActivationsKernel(step.kernels, k, bits),
                        {idx(b, llvm::divideCeil(k / 4, kQuantizeThreads)),
                         idx(b, 1), idx(b, 1)},
                        {kQuantizeThreads, 1, 1}, {x, q}, b);
            step.quantizedInput = x;
            step.quantizedBits = bits;
          }
          gemvArgs[0] = q;
        }
        Value stagedBlocks = GPUStepLowering::ceilDiv(
            idx(b, n), kWarpsPerBlock * plan->rowsPerWarp, b);
        if (ropeEpilogue)
          gemvArgs.push_back(step.mapped(l.getRopePosition()));
        step.launch(stagedGemvKernel(step.kernels, **decoder, n, k,
                                     bias.has_value(), bool(l.getResidual()),
                                     *plan, ropeEpilogue ? rope : RopeAttr()),
                    {stagedBlocks, idx(b, 1), idx(b, 1)},
                    {kWarpsPerBlock * kWarpSize, 1, 1}, gemvArgs, b);
      } else {
        step.launch(gemvKernel(step.kernels, **decoder, n, k, bias.has_value(),
                               bool(l.getResidual()), 1),
                    {blocks, idx(b, 1), idx(b, 1)},
                    {kWarpsPerBlock * kWarpSize, 1, 1}, args, b);
      }
      if (rope && !ropeEpilogue)
        launchRope(step, rope, y, y, step.mapped(l.getRopePosition()), b);
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
      if (rope) {
        b.setInsertionPoint(decode.elseBlock()->getTerminator());
        launchRope(step, rope, y, y, step.mapped(l.getRopePosition()), b);
      }
    }
    step.bind(l.getResult(), y);
    return success();
  }
  /// The int8 decode GEMV's quantized activations.
  int64_t workspaceBytes(LinearOp l) const override {
    auto type = dyn_cast<WeightType>(l.getWeight().getType());
    if (!l.getActivationBits() || !type || !isSplit(type) ||
        type.getShape().size() != 2)
      return 0;
    return quantizedActivationBytes(type.getShape()[1]);
  }
  static Value idx(ImplicitLocOpBuilder &b, int64_t v) {
    return arith::ConstantIndexOp::create(b, v);
  }
};

} // namespace

void mlir::kiln::storeLinearResult(GPUKernelBuilder &kb, Value v, Value row,
                                   Value out, bool bias, bool residual) {
  Type f32 = kb.b.getF32Type();
  if (bias)
    v = kb.add(v, kb.load(kb.view("bias", f32), row));
  if (residual)
    v = kb.add(v, kb.load(kb.view("residual", f32), out));
  kb.store(v, kb.view("y", f32), out);
}

int64_t mlir::kiln::quantizedOutputBits(Operation *op) {
  auto helper = KilnDialect::QuantizeOutputAttrHelper(op->getContext());
  auto type = dyn_cast<RankedTensorType>(op->getResult(0).getType());
  if (!helper.isAttrPresent(op) || !type || type.getRank() != 2 ||
      type.isDynamicDim(1) || type.getDimSize(1) % 128 != 0)
    return 0;
  return helper.getAttr(op).getInt();
}

int64_t mlir::kiln::quantizedActivationBytes(int64_t k) {
  return QuantizedActivations{k}.bytes();
}

void mlir::kiln::emitQuantizeQuad(GPUKernelBuilder &kb, ArrayRef<Value> v,
                                  Value quad, Value valid, int64_t k,
                                  int64_t bits) {
  ImplicitLocOpBuilder &b = kb.b;
  Type f32 = b.getF32Type(), i32 = b.getI32Type();
  const float maxCode = float((int64_t(1) << (bits - 1)) - 1);
  QuantizedActivations qx{k};
  // |x| by clearing the sign bit: math.absf would become a libdevice call
  // (and convert-gpu-to-nvvm rejects llvm.intr.fabs).
  Value amax = kb.f(0.0f);
  for (Value value : v) {
    Value bits = arith::BitcastOp::create(b, i32, value);
    Value abs = arith::BitcastOp::create(
        b, f32, arith::AndIOp::create(b, bits, kb.i32(0x7fffffff)));
    amax = kb.maxf(amax, abs);
  }
  amax = kb.laneGroupMax(amax, 8);
  Value scale = kb.div(amax, kb.f(maxCode));
  Value nonzero =
      arith::CmpFOp::create(b, arith::CmpFPredicate::ONE, amax, kb.f(0.0f));
  Value inv = kb.select(nonzero, kb.div(kb.f(maxCode), amax), kb.f(0.0f));
  // Adding 1.5 * 2^23 rounds a float in [-2^22, 2^22] half-to-even to an
  // integer in the low bits of its encoding: the low byte is the code.
  SmallVector<Value> codes;
  for (Value value : v) {
    Value c = kb.mul(value, inv);
    c = arith::MinimumFOp::create(
        b, arith::MaximumFOp::create(b, c, kb.f(-maxCode)), kb.f(maxCode));
    c = kb.add(c, kb.f(12582912.0f));
    codes.push_back(arith::BitcastOp::create(b, i32, c));
  }
  auto prmt = [&](Value lo, Value hi, int64_t selector) {
    return NVVM::PermuteOp::create(b, i32, lo, hi, kb.i32(selector),
                                   NVVM::PermuteMode::DEFAULT)
        .getResult();
  };
  // Low bytes of codes 0, 1 and of 2, 3, then those four in order.
  Value word = prmt(prmt(codes[0], codes[1], 0x0040),
                    prmt(codes[2], codes[3], 0x0040), 0x5410);
  auto bytes = [&](Value w) {
    return LLVM::BitcastOp::create(b, VectorType::get({4}, b.getI8Type()), w);
  };
  Value sum = NVVM::DotAccumulate4WayOp::create(
      b, i32, bytes(word), NVVM::DotAccumulateType::SIGNED,
      bytes(kb.i32(0x01010101)), NVVM::DotAccumulateType::SIGNED, kb.i32(0));
  sum = kb.laneGroupSum(sum, 8);
  auto roundToF16 = [&](Value f) {
    Value half = arith::TruncFOp::create(b, b.getF16Type(), f);
    return arith::ExtFOp::create(b, f32, half).getResult();
  };
  kb.ifThen(valid, [&] {
    kb.store(word, kb.view("q", i32), quad);
    Value first = arith::CmpIOp::create(b, arith::CmpIPredicate::eq,
                                        kb.rem(quad, kb.idx(8)), kb.idx(0));
    kb.ifThen(first, [&] {
      Value block = kb.div(quad, kb.idx(8));
      Value f32s = kb.view("q", f32), i32s = kb.view("q", i32);
      kb.store(roundToF16(scale), f32s,
               kb.add(kb.idx(qx.scalesAt() / 4), block));
      kb.store(sum, i32s, kb.add(kb.idx(qx.sumsAt() / 4), block));
      kb.store(roundToF16(kb.mul(scale, arith::SIToFPOp::create(b, f32, sum))),
               f32s, kb.add(kb.idx(qx.scaledSumsAt() / 4), block));
    });
  });
}

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
