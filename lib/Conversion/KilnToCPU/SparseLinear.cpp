//===- SparseLinear.cpp - kiln.linear over 2:4 compressed weights ---------===//
//
// A linear layer whose weight kiln-pack-weights stored 2:4 compressed
// (WeightLayout.h, nmBlockBytes): per 32-value block of Q4_0 or Q8_0 the f16
// scale, the 16 kept codes and their 2-bit positions, 14 or 22 bytes
// instead of 18 or 34, rows interleaved by 16. Decode is bandwidth-bound, so
// the kernel reads only those bytes, with int8 activations and the
// variant's byte dot product (CPUTarget), 16 rows per vector as the rows16
// kernels.
//
//===----------------------------------------------------------------------===//

#include "CPUTarget.h"
#include "KernelBuilder.h"
#include "StepLowering.h"

using namespace mlir;
using namespace mlir::kiln;

/// The ggml format a compressed 2:4 weight keeps its codes in ("q4_0",
/// "q8_0"), or null when no sparse kernel reads it.
static const char *sparseCodeFormat(WeightType type) {
  SparsityAttr s = type.getCompressedSparsity();
  QuantSchemeAttr q = type.getQuant();
  if (!s || s.getKind() != SparsityKind::NM || s.getN() != 2 ||
      s.getM() != 4 || !q || q.getLayout() != QuantLayout::GGUF)
    return nullptr;
  const ::kiln::GGMLFormat *ggml = findGGMLBlockFormat(q);
  if (!ggml)
    return nullptr;
  if (ggml->type == ::kiln::GGMLType::Q4_0)
    return "q4_0";
  if (ggml->type == ::kiln::GGMLType::Q8_0)
    return "q8_0";
  return nullptr;
}

LogicalResult mlir::kiln::checkSparseLinearWeight(Operation *op,
                                                  WeightType type) {
  if (!sparseCodeFormat(type))
    return op->emitOpError("the CPU lowering reads compressed sparse weights "
                           "only as 2:4 Q4_0 or Q8_0, got ")
           << type;
  if (type.getInnerDim() % 64 != 0)
    return op->emitOpError("a compressed 2:4 weight needs K to be a multiple "
                           "of 64, got ")
           << type.getInnerDim();
  return success();
}

/// The same i32 in all 16 lanes, as 64 bytes.
static Value broadcastWord(ImplicitLocOpBuilder &b, Value word) {
  Value lanes = vector::BroadcastOp::create(
      b, VectorType::get({16}, b.getI32Type()), word);
  return vector::BitCastOp::create(b, VectorType::get({64}, b.getI8Type()),
                                   lanes);
}

static Value splatI32(ImplicitLocOpBuilder &b, int32_t v) {
  auto type = VectorType::get({16}, b.getI32Type());
  return arith::ConstantOp::create(
      b, DenseElementsAttr::get(type, b.getI32IntegerAttr(v)));
}

static Value asBytes(ImplicitLocOpBuilder &b, Value v) {
  return vector::BitCastOp::create(b, VectorType::get({64}, b.getI8Type()), v);
}

/// (q: memref<?xi8>, qOffset, w, wOffset, [bias, biasOffset,]
///  y: memref<?xNxf32>, tid, nth): y = x W^T with x as quantizeActivations
/// wrote it and W compressed 2:4 (checkSparseLinearWeight).
///
/// Lane r of every vector is row r of a group of 16 (WeightLayout.h), and
/// its 4 bytes one run of 4 values: the run's 2 kept codes, zero-extended
/// from the stored pairs, times the 2 activation bytes their positions pick
/// (a byte shuffle of the run's 4 activation bytes). The codes and positions
/// are decoded once per run for all tokens of a tile; a token costs a
/// broadcast, a shuffle and a byte dot product per run.
func::FuncOp mlir::kiln::buildSparseLinearInt8Kernel(KernelLibrary &library,
                                                     WeightType type,
                                                     int64_t k, int64_t n,
                                                     bool hasBias) {
  const unsigned bits = type.getQuant().getBits();
  // Per block of a group: 16 f16 scales, 8 runs x 16 rows x 2 kept codes,
  // 4 run pairs x 16 rows x 2 position nibbles.
  const int64_t runCodeBytes = 16 * 2 * bits / 8;
  const int64_t codesAt = 32, positionsAt = 32 + 8 * runCodeBytes;
  const int64_t blockBytes = positionsAt + 64;
  const int64_t blocks = k / 32;
  const int64_t groupBytes = blocks * blockBytes;
  constexpr int64_t kTokenTile = 4;
  constexpr int64_t kPrefetchBytes = 8192;

  KernelSignature sig(library.getContext());
  sig.bytesAt("q").weightAndBias(hasBias);
  sig.rows("y", n);
  const CPUTarget &target = library.getTarget();
  // vpmaddubsw saturates past 16-bit pair sums: 8-bit codes times unsigned
  // activation bytes take the widening product on AVX2.
  CPUTarget dotTarget = target.forCodeBits(bits);
  KernelBuilder kb(library, sig,
                   "kiln_linear_q8_" + target.getSymbolName() + "_" +
                       sparseCodeFormat(type) + "_2of4_" + Twine(k) + "x" +
                       Twine(n) + (hasBias ? "_bias" : ""));
  ImplicitLocOpBuilder &b = kb.b;
  Value q = kb.arg("q"), qOffset = kb.arg("qOffset");
  Value w = kb.arg("w"), wOffset = kb.arg("wOffset");
  Value y = kb.arg("y");
  Value tokens = kb.dim(y, 0);
  Value biasView = kb.biasFloats(n);
  Type i8 = b.getI8Type(), i32 = b.getI32Type();
  auto i32x16 = VectorType::get({16}, i32);

  Value zeroI32 = splatI32(b, 0);
  // Activations are signed bytes; the byte dot product wants one operand
  // unsigned: x + 128 (x ^ 0x80), and 128 * (sum of the codes) taken off.
  Value signBytes = arith::ConstantOp::create(b, b.getI32IntegerAttr(
                                                     int32_t(0x80808080u)));
  Value bias128 = asBytes(b, splatI32(b, int32_t(0x80808080u)));
  // Q4_0's codes are unsigned, 8 the zero: subtracted from both kept bytes.
  Value eightEight = asBytes(b, splatI32(b, 0x0808));
  Value low2Bits = splatI32(b, 0x0303), low4 = splatI32(b, 0x0f);
  Value high4 = splatI32(b, 0x0f00);
  auto shiftLeft = [&](Value v, int32_t by) -> Value {
    return arith::ShLIOp::create(b, v, splatI32(b, by));
  };
  auto shiftRight = [&](Value v, int32_t by) -> Value {
    return arith::ShRUIOp::create(b, v, splatI32(b, by));
  };
  auto load16Bytes = [&](Value at) -> Value {
    Value raw = vector::LoadOp::create(b, VectorType::get({16}, i8), w,
                                       ValueRange{at});
    return arith::ExtUIOp::create(b, i32x16, raw);
  };

  // Rows 16g .. 16g+15 times tokens t0 .. t0+tile-1.
  auto emitTile = [&](Value g, Value t0, int64_t tile) {
    Value group = kb.add(wOffset, kb.mul(g, kb.idx(groupBytes)));
    SmallVector<Value> inits(tile, kb.zeros());
    auto loop = kb.loop(
        kb.idx(0), kb.idx(blocks), kb.idx(1), inits,
        [&](Value blk, ValueRange accIn) {
          Value base = kb.add(group, kb.mul(blk, kb.idx(blockBytes)));
          // As the rows16 kernels: one core's hardware prefetcher alone
          // leaves DRAM bandwidth unused.
          for (int64_t l = 0; l < blockBytes; l += 64)
            memref::PrefetchOp::create(
                b, w, ValueRange{kb.add(base, kb.idx(kPrefetchBytes + l))},
                /*isWrite=*/false, /*localityHint=*/3, /*isDataCache=*/true);
          SmallVector<Value> records;
          for (int64_t i = 0; i < tile; ++i)
            records.push_back(kb.add(
                qOffset,
                kb.mul(kb.add(kb.mul(kb.add(t0, kb.idx(i)), kb.idx(blocks)),
                              blk),
                       kb.idx(kQ8RecordBytes))));
          SmallVector<Value> dots(tile, zeroI32);
          Value correction = zeroI32;
          Value positionPair;
          for (int64_t j = 0; j < 8; ++j) {
            Value codesAtJ = kb.add(base, kb.idx(codesAt + runCodeBytes * j));
            // Lane r: [first, second, 0, 0], signed.
            Value codes;
            if (bits == 8) {
              Value pairs = vector::BitCastOp::create(
                  b, VectorType::get({16}, b.getI16Type()),
                  vector::LoadOp::create(b, VectorType::get({32}, i8), w,
                                         ValueRange{codesAtJ}));
              codes = asBytes(b, arith::ExtUIOp::create(b, i32x16, pairs));
            } else {
              Value d = load16Bytes(codesAtJ);
              Value pair = arith::OrIOp::create(
                  b, arith::AndIOp::create(b, d, low4),
                  arith::AndIOp::create(b, shiftLeft(d, 4), high4));
              codes = arith::SubIOp::create(b, asBytes(b, pair), eightEight);
            }
            // Lane r: [i0, i1, 0, 0], the kept values' places in the run.
            if (j % 2 == 0)
              positionPair =
                  load16Bytes(kb.add(base, kb.idx(positionsAt + 8 * j)));
            Value nibble = j % 2 ? shiftRight(positionPair, 4) : positionPair;
            Value second = shiftLeft(positionPair, j % 2 ? 2 : 6);
            Value places = asBytes(
                b, arith::AndIOp::create(
                       b, arith::OrIOp::create(b, nibble, second), low2Bits));
            correction =
                dotTarget.emitByteDot(b, correction, bias128, codes);
            for (int64_t i = 0; i < tile; ++i) {
              Value run = arith::XOrIOp::create(
                  b, loadI32(b, q, kb.add(records[i], kb.idx(4 * j))),
                  signBytes);
              Value x = target.emitPickBytes(b, broadcastWord(b, run), places);
              dots[i] = dotTarget.emitByteDot(b, dots[i], x, codes);
            }
          }
          Value scales = vector::BitCastOp::create(
              b, VectorType::get({16}, b.getF16Type()),
              vector::LoadOp::create(b, VectorType::get({32}, i8), w,
                                     ValueRange{base}));
          Value scale = arith::ExtFOp::create(b, kb.vf32(), scales);
          SmallVector<Value> acc(accIn.begin(), accIn.end());
          for (int64_t i = 0; i < tile; ++i) {
            Value dx = kb.splat(loadF32(b, q, kb.add(records[i], kb.idx(32))));
            Value sums = arith::SubIOp::create(b, dots[i], correction);
            acc[i] = kb.fma(arith::SIToFPOp::create(b, kb.vf32(), sums),
                            kb.mul(scale, dx), acc[i]);
          }
          return acc;
        });
    Value row0 = kb.mul(g, kb.idx(16));
    Value bias = hasBias ? kb.load(biasView, {row0}) : Value();
    for (int64_t i = 0; i < tile; ++i) {
      Value v = loop.getResult(i);
      if (bias)
        v = kb.add(v, bias);
      kb.store(v, y, {kb.add(t0, kb.idx(i)), row0});
    }
  };

  // Groups of 16 rows split between the threads; a group takes the tokens a
  // tile at a time, then one by one.
  auto groupShare = kb.share(kb.idx(n / 16));
  Value tiledTokens = kb.sub(tokens, kb.rem(tokens, kb.idx(kTokenTile)));
  kb.forEach(groupShare.first, groupShare.second, [&](Value g) {
    kb.loop(kb.idx(0), tiledTokens, kb.idx(kTokenTile), {},
            [&](Value t0, ValueRange) {
              emitTile(g, t0, kTokenTile);
              return SmallVector<Value>{};
            });
    kb.forEach(tiledTokens, tokens, [&](Value t) { emitTile(g, t, 1); });
  });
  return kb.finish();
}
