//===- Linear.cpp - linear layers and int8 activations --------------------===//

#include "CPUTarget.h"
#include "KernelBuilder.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"

using namespace mlir;
using namespace mlir::kiln;

//===----------------------------------------------------------------------===//
// linear: y[t, n] = sum_k x[t, k] * W[n, k] (+ bias[n])
//===----------------------------------------------------------------------===//

/// Tokens sharing one dequantized chunk of W: the dequantization cost is
/// paid once per chunk and row for this many tokens.
constexpr int64_t kTokenTile = 4;

func::FuncOp KernelLibrary::linear(const WeightFormat &format, int64_t k,
                                   int64_t n, bool hasBias) {
  KernelSignature sig(module.getContext());
  sig.rows("x", k).bytesAt("w");
  if (hasBias)
    sig.bytesAt("bias");
  sig.rows("y", n);
  KernelBuilder kb(*this, sig,
                   "kiln_linear_" + format.getName() + "_" + Twine(k) + "x" +
                       Twine(n) + (hasBias ? "_bias" : ""));
  ImplicitLocOpBuilder &b = kb.b;
  Value x = kb.arg("x"), y = kb.arg("y");
  Value w = kb.arg("w"), wOffset = kb.arg("wOffset");
  Value biasBuf = kb.optionalArg("bias"),
        biasOffset = kb.optionalArg("biasOffset");

  int64_t chunkValues = format.getChunkValues();
  int64_t parts = chunkValues / kLanes;
  Value tokens = kb.dim(x, 0);
  Value biasView = hasBias ? kb.floatView(biasBuf, biasOffset, kb.idx(n))
                           : Value();
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

func::FuncOp KernelLibrary::quantizeActivations(int64_t k) {
  KernelSignature sig(module.getContext());
  sig.rows("x", k).bytesAt("q");
  KernelBuilder kb(*this, sig, "kiln_quantize_q8_" + Twine(k));
  Value x = kb.arg("x");
  Value q = kb.arg("q"), qOffset = kb.arg("qOffset");
  int64_t perRow = k / 32;
  auto [i0, i1] = kb.share(kb.mul(kb.dim(x, 0), kb.idx(perRow)));
  kb.forEach(i0, i1, [&](Value blk) {
    Value t = kb.div(blk, kb.idx(perRow));
    Value col = kb.mul(kb.rem(blk, kb.idx(perRow)), kb.idx(32));
    emitQuantizeBlock(kb, x, t, col, q,
                      kb.add(qOffset, kb.mul(blk, kb.idx(kQ8RecordBytes))));
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

func::FuncOp KernelLibrary::linearInt8(const WeightFormat &format,
                                       int64_t k, int64_t n, bool hasBias,
                                       StringRef cpu) {
  KernelSignature sig(module.getContext());
  sig.bytesAt("q").bytesAt("w");
  if (hasBias)
    sig.bytesAt("bias");
  sig.rows("y", n);
  CPUTarget target = CPUTarget::get(cpu);
  KernelBuilder kb(*this, sig,
                   "kiln_linear_q8_" + target.getSymbolName() + "_" +
                       format.getName() + "_" + Twine(k) + "x" + Twine(n) +
                       (hasBias ? "_bias" : ""));
  ImplicitLocOpBuilder &b = kb.b;
  Value q = kb.arg("q"), qOffset = kb.arg("qOffset");
  Value w = kb.arg("w"), wOffset = kb.arg("wOffset");
  Value biasBuf = kb.optionalArg("bias"),
        biasOffset = kb.optionalArg("biasOffset");
  Value y = kb.arg("y");
  int64_t blocks = k / 32;
  Value tokens = kb.dim(y, 0);
  Value biasView = hasBias ? kb.floatView(biasBuf, biasOffset, kb.idx(n))
                           : Value();
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
          Value dot = target.emitByteDot(b, zeroI32, u, qx);
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
