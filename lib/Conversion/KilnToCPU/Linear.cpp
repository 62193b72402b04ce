//===- Linear.cpp - kiln.linear to kernel calls ---------------------------===//
//
// A linear layer: f32 kernels, or int8 activations quantized once per
// input (by the producer when it can) and the gguf-layout or rows16 int8
// kernels, whose epilogue adds kiln-fuse's residual and a llama-style RoPE.
//
//===----------------------------------------------------------------------===//

#include "CPUTarget.h"
#include "KernelBuilder.h"
#include "Rows16Reader.h"
#include "StepLowering.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"

using namespace mlir;
using namespace mlir::kiln;

//===----------------------------------------------------------------------===//
// linear: y[t, n] = sum_k x[t, k] * W[n, k] (+ bias[n])
//===----------------------------------------------------------------------===//

/// Tokens sharing one dequantized chunk of W: the dequantization cost is
/// paid once per chunk and row for this many tokens.
constexpr int64_t kTokenTile = 4;

/// (x: memref<?xKxf32>, w: memref<?xi8>, wOffset: index,
///  [bias: memref<?xi8>, biasOffset: index,] y: memref<?xNxf32>, tid, nth)
static func::FuncOp buildLinearKernel(KernelLibrary &library,
                                      const WeightFormat &format, int64_t k,
                                      int64_t n, bool hasBias) {
  KernelSignature sig(library.getContext());
  sig.rows("x", k).weightAndBias(hasBias);
  sig.rows("y", n);
  KernelBuilder kb(library, sig,
                   "kiln_linear_" + format.getName() + "_" + Twine(k) + "x" +
                       Twine(n) + (hasBias ? "_bias" : ""));
  ImplicitLocOpBuilder &b = kb.b;
  Value x = kb.arg("x"), y = kb.arg("y");
  Value w = kb.arg("w"), wOffset = kb.arg("wOffset");

  int64_t chunkValues = format.getChunkValues();
  int64_t parts = chunkValues / kLanes;
  Value tokens = kb.dim(x, 0);
  Value biasView = kb.biasFloats(n);
  auto [rowBegin, rowEnd] = kb.share(kb.idx(n));
  Value tiledTokens =
      kb.sub(tokens, kb.rem(tokens, kb.idx(kTokenTile)));

  // Computes `tile` consecutive tokens starting at `t0` for row `row`.
  auto emitTile = [&](Value row, Value t0, int64_t tile) {
    Value rowBase = kb.add(wOffset, kb.mul(row, kb.idx(format.getRowBytes())));
    SmallVector<Value> inits(tile * parts, kb.zeros());
    auto chunks = kb.loop(
        kb.idx(0), kb.idx(k / chunkValues), kb.idx(1), inits,
        [&](Value c, ValueRange acc) {
          SmallVector<Value> wv = format.emitChunk(b, w, rowBase, c);
          SmallVector<Value> out;
          Value col0 = kb.mul(c, kb.idx(chunkValues));
          for (int64_t i = 0; i < tile; ++i) {
            Value t = kb.add(t0, kb.idx(i));
            for (int64_t p = 0; p < parts; ++p) {
              Value xv = kb.load(x, {t, kb.add(col0, kb.idx(p * kLanes))});
              out.push_back(kb.fma(xv, wv[p], acc[i * parts + p]));
            }
          }
          return out;
        });
    Value bias = hasBias ? Value(memref::LoadOp::create(b, biasView, row))
                         : Value();
    for (int64_t i = 0; i < tile; ++i) {
      Value acc = chunks.getResult(i * parts);
      for (int64_t p = 1; p < parts; ++p)
        acc = kb.add(acc, chunks.getResult(i * parts + p));
      Value s = kb.sum(acc);
      if (bias)
        s = kb.add(s, bias);
      memref::StoreOp::create(b, s, y, ValueRange{kb.add(t0, kb.idx(i)), row});
    }
  };

  kb.forEach(rowBegin, rowEnd, [&](Value row) {
    kb.loop(kb.idx(0), tiledTokens, kb.idx(kTokenTile), {},
            [&](Value t0, ValueRange) {
              emitTile(row, t0, kTokenTile);
              return SmallVector<Value>{};
            });
    kb.forEach(tiledTokens, tokens, [&](Value t0) { emitTile(row, t0, 1); });
  });
  return kb.finish();
}

//===----------------------------------------------------------------------===//
// int8 activations: quantize once per input, integer dot products per block
//===----------------------------------------------------------------------===//

/// (x: memref<?xKxf32>, q: memref<?xi8>, qOffset: index, tid, nth):
/// quantizes each 32-value block of x to `bits`-bit codes in int8, at 8 bits
/// as ggml's q8_1 does (with m = 2^(bits-1) - 1: scale amax/m rounded to f16,
/// codes round-half-even(x * m/amax) clamped to [-m, m], and the f16-rounded
/// scale * code sum), one kQ8RecordBytes record per block.
static func::FuncOp buildQuantizeActivationsKernel(KernelLibrary &library,
                                                   int64_t k, int64_t bits) {
  KernelSignature sig(library.getContext());
  sig.rows("x", k).bytesAt("q");
  KernelBuilder kb(library, sig,
                   "kiln_quantize_q" + Twine(bits) + "_" + Twine(k));
  Value x = kb.arg("x");
  Value q = kb.arg("q"), qOffset = kb.arg("qOffset");
  int64_t perRow = k / 32;
  auto [i0, i1] = kb.share(kb.mul(kb.dim(x, 0), kb.idx(perRow)));
  kb.forEach(i0, i1, [&](Value blk) {
    Value t = kb.div(blk, kb.idx(perRow));
    Value col = kb.mul(kb.rem(blk, kb.idx(perRow)), kb.idx(32));
    emitQuantizeBlock(kb, x, t, col, q,
                      kb.add(qOffset, kb.mul(blk, kb.idx(kQ8RecordBytes))),
                      bits);
  });
  return kb.finish();
}

// Accumulation order of the GGUF-layout kernel (rows16 accumulates each
// row's blocks in order in its own lane instead). Integer sums are exact,
// but the float steps that scale and add them round. This kernel follows
// ggml's x86 order, so its results equal llama.cpp's bit for bit: per
// block, eight lanes of four-product sums, acc8 += (d_w * d_x) * lanes in
// block order, then ((acc[0:4] + acc[4:8]) pairwise, as hsum_float_8) plus
// the sum of the min terms.

static VectorType vf32x8(ImplicitLocOpBuilder &b) {
  return VectorType::get({8}, b.getF32Type());
}

/// acc8 + scale * float(quads8).
static Value accumulateBlock(ImplicitLocOpBuilder &b, Value acc8, Value quads8,
                             Value scale) {
  Value lanes = arith::SIToFPOp::create(b, vf32x8(b), quads8);
  Value splat = vector::BroadcastOp::create(b, vf32x8(b), scale);
  return vector::FMAOp::create(b, splat, lanes, acc8);
}

/// Lanes [offset, offset + 8) of a vector.
static Value lanes8(ImplicitLocOpBuilder &b, Value v, int64_t offset) {
  return vector::ExtractStridedSliceOp::create(
      b, v, ArrayRef<int64_t>{offset}, ArrayRef<int64_t>{8},
      ArrayRef<int64_t>{1});
}

/// ggml's hsum_float_8: (x[i] + x[i+4]) for i < 4, then pairs, then the two.
static Value horizontalSum8(ImplicitLocOpBuilder &b, Value acc8) {
  auto f32x4 = VectorType::get({4}, b.getF32Type());
  auto f32x2 = VectorType::get({2}, b.getF32Type());
  auto slice = [&](Value v, int64_t at, int64_t n, VectorType) {
    return vector::ExtractStridedSliceOp::create(
        b, v, ArrayRef<int64_t>{at}, ArrayRef<int64_t>{n},
        ArrayRef<int64_t>{1});
  };
  Value r4 = arith::AddFOp::create(b, slice(acc8, 4, 4, f32x4),
                                   slice(acc8, 0, 4, f32x4));
  Value r2 = arith::AddFOp::create(b, slice(r4, 0, 2, f32x2),
                                   slice(r4, 2, 2, f32x2));
  Value x0 = vector::ExtractOp::create(b, r2, ArrayRef<int64_t>{0});
  Value x1 = vector::ExtractOp::create(b, r2, ArrayRef<int64_t>{1});
  return arith::AddFOp::create(b, x0, x1);
}

/// (q: memref<?xi8>, qOffset: index, w, wOffset, [bias, biasOffset,]
///  y: memref<?xNxf32>, tid, nth): y = x W^T with x as quantized by
/// quantizeActivations, integer dot products two 32-value blocks at a time:
/// AVX-512 VNNI vpdpbusd on x86-64-v4, AVX2 vpmaddubsw + vpmaddwd
/// for x86-64-v3, portable vector code for generic.
static func::FuncOp buildLinearInt8Kernel(KernelLibrary &library,
                                          const WeightFormat &format,
                                          int64_t k, int64_t n,
                                          bool hasBias) {
  KernelSignature sig(library.getContext());
  sig.bytesAt("q").weightAndBias(hasBias);
  sig.rows("y", n);
  const CPUTarget &target = library.getTarget();
  KernelBuilder kb(library, sig,
                   "kiln_linear_q8_" + target.getSymbolName() + "_" +
                       format.getName() + "_" + Twine(k) + "x" + Twine(n) +
                       (hasBias ? "_bias" : ""));
  ImplicitLocOpBuilder &b = kb.b;
  Value q = kb.arg("q"), qOffset = kb.arg("qOffset");
  Value w = kb.arg("w"), wOffset = kb.arg("wOffset");
  Value y = kb.arg("y");
  int64_t blocks = k / 32;
  Value tokens = kb.dim(y, 0);
  Value biasView = kb.biasFloats(n);
  auto rowShare = kb.share(kb.idx(n));
  Value rowBegin = rowShare.first, rowEnd = rowShare.second;
  Value tiledTokens = kb.sub(tokens, kb.rem(tokens, kb.idx(kTokenTile)));
  auto i8x32 = VectorType::get({32}, b.getI8Type());
  auto i8x64 = VectorType::get({64}, b.getI8Type());
  auto i32x16 = VectorType::get({16}, b.getI32Type());
  SmallVector<int64_t> concat64(64);
  for (int64_t i = 0; i < 64; ++i)
    concat64[i] = i;
  Value zeroI32 = arith::ConstantOp::create(
      b, DenseElementsAttr::get(i32x16, b.getI32IntegerAttr(0)));
  Value zeroI8 = arith::ConstantOp::create(
      b, DenseElementsAttr::get(i8x64, b.getI8IntegerAttr(0)));
  Value zeroI8x32 = arith::ConstantOp::create(
      b, DenseElementsAttr::get(i8x32, b.getI8IntegerAttr(0)));

  // A tile is `rows` consecutive rows times `tile` consecutive tokens: the
  // weights of a row pair are dequantized once for all tokens of the tile,
  // and independent rows give a single token independent FMA chains.
  auto emitTile = [&](Value row0, int64_t rows, Value t0, int64_t tile) {
    SmallVector<Value> rowBases;
    for (int64_t r = 0; r < rows; ++r)
      rowBases.push_back(kb.add(wOffset, kb.mul(kb.add(row0, kb.idx(r)),
                                                kb.idx(format.getRowBytes()))));
    Value zero8 = vector::BroadcastOp::create(b, vf32x8(b), kb.f(0.0f));
    SmallVector<Value> inits;
    for (int64_t i = 0; i < rows * tile; ++i)
      inits.append({zero8, kb.f(0.0f)});
    // One step covers blocks c0 and c0 + 1 (`pair`) or block c0 alone, the
    // odd last block, with the second half of the byte vectors zero.
    auto step = [&](Value c0, bool pair, ValueRange acc) {
      SmallVector<Value> blocksOf = {c0};
      if (pair)
        blocksOf.push_back(kb.add(c0, kb.idx(1)));
      auto record = [&](Value t, Value c) {
        return kb.add(qOffset, kb.mul(kb.add(kb.mul(t, kb.idx(blocks)), c),
                                      kb.idx(kQ8RecordBytes)));
      };
      auto widen = [&](Value lo, Value hi) -> Value {
        return vector::ShuffleOp::create(b, lo, hi ? hi : zeroI8x32, concat64);
      };
      // Activations of the tile's tokens for these blocks.
      SmallVector<Value> qxs;
      SmallVector<SmallVector<Value>> dxs(tile), sxs(tile);
      for (int64_t i = 0; i < tile; ++i) {
        Value t = kb.add(t0, kb.idx(i));
        SmallVector<Value> halves;
        for (Value c : blocksOf) {
          Value rec = record(t, c);
          halves.push_back(
              vector::LoadOp::create(b, i8x32, q, ValueRange{rec}));
          dxs[i].push_back(loadF32(b, q, kb.add(rec, kb.idx(32))));
          sxs[i].push_back(kb.add(rec, kb.idx(36)));
        }
        qxs.push_back(widen(halves[0], pair ? halves[1] : Value()));
      }
      SmallVector<Value> out(acc.begin(), acc.end());
      for (int64_t r = 0; r < rows; ++r) {
        SmallVector<WeightFormat::IntegerChunk> wc;
        for (Value c : blocksOf)
          wc.push_back(format.emitIntegerChunk(b, w, rowBases[r], c));
        Value codes = widen(wc[0].codes, pair ? wc[1].codes : Value());
        // Signed codes: |w| as the unsigned operand, x negated where w < 0.
        Value u = codes, negative;
        if (!wc[0].unsignedCodes) {
          u = math::AbsIOp::create(b, codes);
          negative = arith::CmpIOp::create(b, arith::CmpIPredicate::slt, codes,
                                           zeroI8);
        }
        for (int64_t i = 0; i < tile; ++i) {
          Value qx = qxs[i];
          if (negative)
            qx = arith::SelectOp::create(
                b, negative, arith::SubIOp::create(b, zeroI8, qx), qx);
          // Lanes 0-7: the first block's quad sums, lanes 8-15: the second's.
          const CPUTarget dotTarget =
              wc[0].wideCodes ? target.forCodeBits(8) : target;
          Value dot = dotTarget.emitByteDot(b, zeroI32, u, qx);
          int64_t a = 2 * (r * tile + i);
          for (auto [j, chunk] : llvm::enumerate(wc)) {
            out[a] = accumulateBlock(b, out[a], lanes8(b, dot, 8 * j),
                                     kb.mul(chunk.scale, dxs[i][j]));
            if (chunk.min)
              out[a + 1] = kb.add(out[a + 1],
                                  kb.mul(chunk.min, loadF32(b, q, sxs[i][j])));
          }
        }
      }
      return out;
    };
    int64_t pairs = blocks / 2;
    auto loop = kb.loop(kb.idx(0), kb.idx(2 * pairs), kb.idx(2), inits,
                        [&](Value c0, ValueRange acc) {
                          return step(c0, /*pair=*/true, acc);
                        });
    SmallVector<Value> sums(loop.getResults());
    if (blocks % 2)
      sums = step(kb.idx(blocks - 1), /*pair=*/false, sums);
    for (int64_t r = 0; r < rows; ++r) {
      Value row = kb.add(row0, kb.idx(r));
      Value bias = hasBias ? Value(memref::LoadOp::create(b, biasView, row))
                           : Value();
      for (int64_t i = 0; i < tile; ++i) {
        int64_t a = 2 * (r * tile + i);
        Value s = kb.add(horizontalSum8(b, sums[a]), sums[a + 1]);
        if (bias)
          s = kb.add(s, bias);
        memref::StoreOp::create(b, s, y,
                                ValueRange{kb.add(t0, kb.idx(i)), row});
      }
    }
  };

  // Token tiles of kTokenTile for each row, then the remaining tokens two
  // rows at a time.
  kb.forEach(rowBegin, rowEnd, [&](Value row) {
    kb.loop(kb.idx(0), tiledTokens, kb.idx(kTokenTile), {},
            [&](Value t0, ValueRange) {
              emitTile(row, 1, t0, kTokenTile);
              return SmallVector<Value>{};
            });
  });
  Value rowCount = kb.sub(rowEnd, rowBegin);
  Value pairedEnd =
      kb.add(rowBegin, kb.sub(rowCount, kb.rem(rowCount, kb.idx(2))));
  kb.forEach(tiledTokens, tokens, [&](Value t0) {
    kb.loop(rowBegin, pairedEnd, kb.idx(2), {}, [&](Value row, ValueRange) {
      emitTile(row, 2, t0, 1);
      return SmallVector<Value>{};
    });
    kb.forEach(pairedEnd, rowEnd, [&](Value row) { emitTile(row, 1, t0, 1); });
  });
  return kb.finish();
}

//===----------------------------------------------------------------------===//
// linearRows16: int8 activations times rows16 weights, 16 rows per vector
//===----------------------------------------------------------------------===//

/// Tokens a rows16 kernel multiplies per pass over a block's codes, and
/// tokens whose activations it keeps hot in L2 while it walks all rows.
constexpr int64_t kRows16TokenTile = 8;
constexpr int64_t kRows16TokenChunk = 64;
/// How far ahead of the codes being multiplied the kernel prefetches.
constexpr int64_t kPrefetchBytes = 8192;

/// What the rows16 linear kernel adds to x W^T in its epilogue, and the
/// operands that takes.
struct Rows16Epilogue {
  bool hasBias = false;
  /// A rows memref `residual` follows the bias and the kernel writes
  /// y = residual + x W^T (the residual add of a transformer block).
  bool hasResidual = false;
  /// Non-zero: (rope: memref<?xi8>, ropeOffset: index) follow, a ropeTable
  /// of rotary_dim = ropeHeadDim, applied to adjacent pairs (llama style).
  int64_t ropeHeadDim = 0;
};

/// linearInt8's signature and result for a weight in #kiln_cpu.rows16:
/// 16 rows per vector, one sequential read of the weights per token chunk,
/// then `epilogue`.
static func::FuncOp buildLinearRows16Kernel(KernelLibrary &library,
                                            const Rows16Format &format,
                                            int64_t k, int64_t n,
                                            const Rows16Epilogue &epilogue) {
  KernelSignature sig(library.getContext());
  sig.bytesAt("q").weightAndBias(epilogue.hasBias);
  if (epilogue.hasResidual)
    sig.rows("residual", n);
  if (epilogue.ropeHeadDim)
    sig.bytesAt("rope");
  sig.rows("y", n);
  const CPUTarget &target = library.getTarget();
  KernelBuilder kb(
      library, sig,
      "kiln_linear_r16_" + target.getSymbolName() + "_" + format.name + "_" +
          Twine(k) + "x" + Twine(n) + (epilogue.hasBias ? "_bias" : "") +
          (epilogue.hasResidual ? "_residual" : "") +
          (epilogue.ropeHeadDim ? "_rope" + Twine(epilogue.ropeHeadDim) : ""));
  ImplicitLocOpBuilder &b = kb.b;
  Value q = kb.arg("q"), qOffset = kb.arg("qOffset");
  Value w = kb.arg("w"), wOffset = kb.arg("wOffset");
  Value residual = kb.optionalArg("residual"), y = kb.arg("y");
  Value ropeTable = kb.optionalArg("rope"),
        ropeOffset = kb.optionalArg("ropeOffset");

  const int64_t blocks = k / 32, bps = format.superValues / 32;
  const int64_t supers = k / format.superValues;
  // The lowering takes feature dimensions in multiples of 16: whole groups.
  assert(n % kRows16 == 0 && "rows16 kernels write whole groups of 16 rows");
  const int64_t groups = n / kRows16;
  const int64_t groupBytes = format.groupBytes(k);
  const int64_t headerRegion = format.headerRegionBytes(k);
  const int64_t codeBytes = format.blockCodeBytes();
  // Looked-up codes are bytes up to 241.
  CPUTarget dotTarget =
      target.forCodeBits(format.codebook ? 8 : format.codeBits);

  Rows16Reader reader{kb, format, w, target};
  auto i32x16 = VectorType::get({16}, b.getI32Type());

  Value tokens = kb.dim(y, 0);
  auto groupShare = kb.share(kb.idx(groups));
  Value g0 = groupShare.first, g1 = groupShare.second;
  Value biasView = kb.biasFloats(n);
  Value zeroI32 = arith::ConstantOp::create(
      b, DenseElementsAttr::get(i32x16, b.getI32IntegerAttr(0)));

  // RoPE on adjacent pairs (llama style, rotary_dim = head_dim): lanes 2i
  // and 2i+1 are a pair, their (cos, sin) the table's 8 entries for this
  // token at the rows' place in the head.
  Value ropeView =
      epilogue.ropeHeadDim
          ? kb.floatView(ropeTable, ropeOffset,
                         kb.mul(tokens, kb.idx(epilogue.ropeHeadDim)))
          : Value();
  auto emitRopePairs = [&](Value v, Value t, Value row0) -> Value {
    Value at = kb.add(kb.mul(t, kb.idx(epilogue.ropeHeadDim)),
                      kb.rem(row0, kb.idx(epilogue.ropeHeadDim)));
    Value cs = vector::LoadOp::create(b, kb.vf32(), ropeView, ValueRange{at});
    SmallVector<int64_t> evens, odds, swap;
    for (int64_t l = 0; l < kLanes; ++l) {
      evens.push_back(l & ~1);
      odds.push_back(l | 1);
      swap.push_back(l ^ 1);
    }
    Value cos = vector::ShuffleOp::create(b, cs, cs, evens);
    Value sin = vector::ShuffleOp::create(b, cs, cs, odds);
    SmallVector<float> signs;
    for (int64_t l = 0; l < kLanes; ++l)
      signs.push_back(l % 2 ? 1.0f : -1.0f);
    Value sign = arith::ConstantOp::create(
        b, DenseElementsAttr::get(kb.vf32(), ArrayRef<float>(signs)));
    Value swapped = vector::ShuffleOp::create(b, v, v, swap);
    // x0 * cos - x1 * sin, x0 * sin + x1 * cos
    return kb.add(kb.mul(v, cos), kb.mul(swapped, kb.mul(sin, sign)));
  };

  // Rows 16g .. 16g+15 times tokens t0 .. t0+tile-1.
  auto emitTile = [&](Value g, Value t0, int64_t tile) {
    Value group = kb.add(wOffset, kb.mul(g, kb.idx(groupBytes)));
    SmallVector<Value> inits(tile, kb.zeros());
    auto loop = kb.loop(
        kb.idx(0), kb.idx(supers), kb.idx(1), inits,
        [&](Value s, ValueRange accIn) {
          SmallVector<Value> acc(accIn.begin(), accIn.end());
          Value header = kb.add(group, kb.mul(s, kb.idx(format.headerBytes)));
          Value d = reader.firstScale(header);
          for (int64_t j = 0; j < bps; ++j) {
            Value blk = kb.add(kb.mul(s, kb.idx(bps)), kb.idx(j));
            Value codeAt =
                kb.add(group, kb.add(kb.idx(headerRegion),
                                     kb.mul(blk, kb.idx(codeBytes))));
            // One core's hardware prefetcher alone leaves DRAM bandwidth
            // unused (measured: ~1.5x slower GEMV on one thread).
            for (int64_t l = 0; l < codeBytes; l += 64)
              memref::PrefetchOp::create(
                  b, w, ValueRange{kb.add(codeAt, kb.idx(kPrefetchBytes + l))},
                  /*isWrite=*/false, /*localityHint=*/3, /*isDataCache=*/true);
            SmallVector<Value> codes = reader.unpack(codeAt);
            Rows16Reader::Scales sc = reader.scales(header, d, j);
            Value scale = sc.scale, min = sc.min, scLo = sc.lo, scHi = sc.hi;
            for (int64_t i = 0; i < tile; ++i) {
              Value rec = kb.add(
                  qOffset,
                  kb.mul(kb.add(kb.mul(kb.add(t0, kb.idx(i)), kb.idx(blocks)),
                                blk),
                         kb.idx(kQ8RecordBytes)));
              // Symmetric codes: start from -offset * (sum of the
              // activation codes) so the sums come out signed and exact;
              // one start for the whole block unless the halves are scaled
              // apart (Q6_K).
              auto start = [&](ArrayRef<int64_t> at) -> Value {
                if (!format.offset || at.empty())
                  return zeroI32;
                Value sum = loadI32(b, q, kb.add(rec, kb.idx(at[0])));
                for (int64_t more : at.drop_front())
                  sum = arith::AddIOp::create(
                      b, sum, loadI32(b, q, kb.add(rec, kb.idx(more))));
                Value neg = arith::MulIOp::create(
                    b, sum,
                    arith::ConstantOp::create(
                        b, b.getI32IntegerAttr(-int32_t(format.offset))));
                return vector::BroadcastOp::create(b, i32x16, neg);
              };
              Value half[2] = {
                  format.halfScales ? start({40}) : start({40, 44}),
                  format.halfScales ? start({44}) : start({})};
              SmallVector<Value> xs;
              for (int64_t t = 0; t < 8; ++t) {
                Value x = vector::BroadcastOp::create(
                    b, i32x16, loadI32(b, q, kb.add(rec, kb.idx(4 * t))));
                xs.push_back(vector::BitCastOp::create(
                    b, VectorType::get({64}, b.getI8Type()), x));
              }
              for (int64_t h = 0; h < 2; ++h)
                half[h] = dotTarget.emitByteDots(
                    b, half[h], ArrayRef(codes).slice(4 * h, 4),
                    ArrayRef(xs).slice(4 * h, 4));
              Value sum =
                  format.halfScales
                      ? arith::AddIOp::create(
                            b, arith::MulIOp::create(b, half[0], scLo),
                            arith::MulIOp::create(b, half[1], scHi))
                      : arith::AddIOp::create(b, half[0], half[1]);
              Value dxScalar = loadF32(b, q, kb.add(rec, kb.idx(32)));
              Value dx = kb.splat(dxScalar);
              acc[i] = kb.fma(reader.toFloat(sum), kb.mul(scale, dx), acc[i]);
              // Q2_K's min per 16 values times the exact code sums of the
              // activation halves.
              for (auto [min16, at] :
                   {std::pair{sc.minLo, 40}, std::pair{sc.minHi, 44}})
                if (min16)
                  acc[i] = kb.fma(
                      min16,
                      kb.splat(kb.mul(dxScalar,
                                      reader.toFloatScalar(loadI32(
                                          b, q, kb.add(rec, kb.idx(at)))))),
                      acc[i]);
              if (min)
                acc[i] = kb.fma(
                    min, kb.splat(loadF32(b, q, kb.add(rec, kb.idx(36)))),
                    acc[i]);
            }
          }
          return acc;
        });
    Value row0 = kb.mul(g, kb.idx(kRows16));
    Value bias = epilogue.hasBias ? kb.load(biasView, {row0}) : Value();
    for (int64_t i = 0; i < tile; ++i) {
      Value v = loop.getResult(i);
      Value t = kb.add(t0, kb.idx(i));
      if (bias)
        v = kb.add(v, bias);
      if (residual)
        v = kb.add(kb.load(residual, {t, row0}), v);
      if (epilogue.ropeHeadDim)
        v = emitRopePairs(v, t, row0);
      kb.store(v, y, {t, row0});
    }
  };

  kb.forTokenTiles(tokens, kRows16TokenChunk, kRows16TokenTile, g0, g1,
                   emitTile);
  return kb.finish();
}

//===----------------------------------------------------------------------===//
// Patterns
//===----------------------------------------------------------------------===//

namespace {

struct LinearLowering : KernelCallPattern<LinearOp> {
  LogicalResult lower(LinearOp l, StepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    Operation *op = l;
    // The f32 and row-major integer kernels write one row at a time, so any
    // output width (a classifier's 10 classes); rows16 kernels, the
    // residual add and the rope write 16 lanes.
    bool rowAtATime = !isRows16(l.getWeight().getType()) &&
                      !l.getResidual() && !l.getRope();
    if (failed(step.requireRowsF32(op, l.getInput())) ||
        failed(step.requireRowsF32(op, l.getResult(), rowAtATime ? 1 : 16)))
      return failure();
    auto w = step.weightOf(l.getWeight(), op);
    if (failed(w))
      return failure();
    const Rows16Format *rows16 =
        isRows16(w->type) ? findRows16Format(w->type) : nullptr;
    if (rows16 && !step.usesInt8(l))
      return l.emitOpError("target_layout = #kiln_cpu.rows16 weights need "
                           "activation_bits = 8 (kiln-fuse{activation-bits=8})");
    bool sparse = bool(w->type.getCompressedSparsity());
    if (sparse && failed(checkSparseLinearWeight(op, w->type)))
      return failure();
    if (sparse && !step.usesInt8(l))
      return l.emitOpError("compressed sparse weights need activation_bits = "
                           "8 (kiln-fuse{activation-bits=8})");
    FailureOr<std::unique_ptr<WeightFormat>> f;
    if (!rows16 && !sparse && failed(f = step.formatOf(op, w->type)))
      return failure();
    std::optional<WeightRef> bias;
    if (l.getBias()) {
      auto bw = step.weightOf(l.getBias(), op);
      if (failed(bw))
        return failure();
      if (!bw->type.getElementType().isF32())
        return l.emitOpError("the CPU lowering needs an f32 bias");
      bias = *bw;
    }
    int64_t k = w->type.getShape()[1], n = w->type.getShape()[0];
    if (!rows16 && !sparse && k % (*f)->getChunkValues() != 0)
      return l.emitOpError("K = ")
             << k << " is not a multiple of " << (*f)->getChunkValues();
    Value x = step.mapped(l.getInput());
    // kiln-fuse's residual: added in the epilogue of the rows16 step.kernels,
    // by an add kernel after the others.
    Value residual = l.getResidual();
    bool residualEpilogue = residual && rows16;
    RopeAttr rope = step.ropeEpilogueOf(l);
    Value out = l.getResult();
    Value y = step.resultBuffer(out, x, b);
    SmallVector<Value> args;
    func::FuncOp kernel;
    if (step.usesInt8(l)) {
      int64_t bits = *l.getActivationBits();
      if (step.lastQuantized != x || step.lastQuantizedBits != bits) {
        step.callKernel(buildQuantizeActivationsKernel(step.kernels, k, bits),
                        {x, step.scratchArg, idx(b, step.q8Offset)}, b,
                        {step.regionOf(l.getInput())},
                        {step.scratchRegion(step.q8Offset, step.q8Bytes)});
        step.lastQuantized = x;
        step.lastQuantizedBits = bits;
      }
      args = {step.scratchArg, idx(b, step.q8Offset)};
      if (rows16)
        kernel = buildLinearRows16Kernel(
            step.kernels, *rows16, k, n,
            Rows16Epilogue{bias.has_value(), residualEpilogue,
                           rope ? rope.getHeadDim() : 0});
      else if (sparse)
        kernel = buildSparseLinearInt8Kernel(step.kernels, w->type, k, n,
                                             bias.has_value());
      else
        kernel = buildLinearInt8Kernel(step.kernels, **f, k, n,
                                       bias.has_value());
    } else {
      args = {x};
      kernel = buildLinearKernel(step.kernels, **f, k, n, bias.has_value());
    }
    args.append({step.weightsArg, idx(b, w->offset)});
    if (bias)
      args.append({step.weightsArg, idx(b, bias->offset)});
    SmallVector<StepLowering::Region> reads = {
        step.usesInt8(l) ? step.scratchRegion(step.q8Offset, step.q8Bytes)
                               : step.regionOf(l.getInput())};
    if (residualEpilogue) {
      args.push_back(step.mapped(residual));
      reads.push_back(step.regionOf(residual));
    }
    if (rope) {
      FailureOr<StepLowering::RopeTable *> table =
          step.ropeTableFor(op, rope, l.getRopePosition(), x, b);
      if (failed(table))
        return failure();
      args.append({step.scratchArg, idx(b, (*table)->offset)});
      reads.push_back(step.scratchRegion((*table)->offset, (*table)->bytes));
    }
    args.push_back(y);
    step.callKernel(kernel, args, b, reads, {step.regionOf(out)});
    if (residual && !residualEpilogue)
      step.callKernel(
          buildElementwiseKernel(step.kernels, ElementwiseKind::Add, n,
                                 /*quantizeBits=*/0),
          {y, step.mapped(residual), y}, b,
          {step.regionOf(out), step.regionOf(residual)}, {step.regionOf(out)});
    step.bind(l.getResult(), y);
    // A rope this kernel could not apply: rotated in place.
    if (l.getRope() && !rope)
      return emitRope(step, op, l.getRopeAttr(), l.getRopePosition(), out,
                      out, b);
    return success();
  }
};

} // namespace

void mlir::kiln::populateLinearPatterns(KernelCallPatterns &patterns) {
  patterns.add<LinearLowering>();
}
