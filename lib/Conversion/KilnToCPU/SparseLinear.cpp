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

/// The same 8 bytes in every 8 bytes of a 64-byte vector.
static Value broadcastQuad(ImplicitLocOpBuilder &b, Value quad) {
  Value lanes = vector::BroadcastOp::create(
      b, VectorType::get({8}, b.getI64Type()), quad);
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
/// its 4 bytes two runs of 4 values: each run's 2 kept codes, zero-extended
/// from the stored pairs, times the 2 activation bytes their positions pick
/// out of the two runs' 8 activation bytes (a byte shuffle of them,
/// broadcast). The codes and positions are decoded once per run pair for
/// all tokens of a tile; a token costs a broadcast, a shuffle and a byte
/// dot product per 8 values, as many dot products as dense weights take
/// per 16 values.
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
  // As the rows16 kernels: tokens per pass over a group's codes, and tokens
  // whose activation records stay in L2 while every group walks them.
  constexpr int64_t kTokenTile = 8;
  constexpr int64_t kTokenChunk = 64;
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
  Value bias128 = asBytes(b, splatI32(b, int32_t(0x80808080u)));
  Value signBytes = bias128;
  // Q4_0's codes are unsigned, 8 the zero: subtracted from all 4 kept bytes.
  Value eightFour = asBytes(b, splatI32(b, 0x08080808));
  Value low2Bits = splatI32(b, 0x03030303), low4 = splatI32(b, 0x0f);
  Value secondRunBytes = splatI32(b, 0x04040000);
  Value high4 = splatI32(b, 0x0f00);
  auto shiftLeft = [&](Value v, int32_t by) -> Value {
    return arith::ShLIOp::create(b, v, splatI32(b, by));
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
          for (int64_t pair = 0; pair < 4; ++pair) {
            Value firstAt =
                kb.add(base, kb.idx(codesAt + runCodeBytes * 2 * pair));
            Value secondAt =
                kb.add(base, kb.idx(codesAt + runCodeBytes * (2 * pair + 1)));
            // Lane r: [run 2p's two codes, run 2p+1's two codes], signed.
            Value codes;
            if (bits == 8) {
              auto loadPairs = [&](Value at) -> Value {
                Value pairs = vector::BitCastOp::create(
                    b, VectorType::get({16}, b.getI16Type()),
                    vector::LoadOp::create(b, VectorType::get({32}, i8), w,
                                           ValueRange{at}));
                return arith::ExtUIOp::create(b, i32x16, pairs);
              };
              codes = asBytes(b, arith::OrIOp::create(
                                     b, loadPairs(firstAt),
                                     shiftLeft(loadPairs(secondAt), 16)));
            } else {
              // One byte per row and run: its low and high nibble.
              auto spread = [&](Value d) -> Value {
                return arith::OrIOp::create(
                    b, arith::AndIOp::create(b, d, low4),
                    arith::AndIOp::create(b, shiftLeft(d, 4), high4));
              };
              Value both = arith::OrIOp::create(
                  b, spread(load16Bytes(firstAt)),
                  shiftLeft(spread(load16Bytes(secondAt)), 16));
              codes = arith::SubIOp::create(b, asBytes(b, both), eightFour);
            }
            // Lane r: [i0, i1, 4 + i2, 4 + i3], the kept values' places in
            // the two runs' 8 bytes: one byte per row holds run 2p's two
            // 2-bit places, then run 2p+1's.
            Value p = load16Bytes(kb.add(base, kb.idx(positionsAt + 16 * pair)));
            Value spreadPlaces = arith::OrIOp::create(
                b,
                arith::OrIOp::create(b, p, shiftLeft(p, 6)),
                arith::OrIOp::create(b, shiftLeft(p, 12), shiftLeft(p, 18)));
            Value places = asBytes(
                b, arith::AddIOp::create(
                       b, arith::AndIOp::create(b, spreadPlaces, low2Bits),
                       secondRunBytes));
            correction =
                dotTarget.emitByteDot(b, correction, bias128, codes);
            for (int64_t i = 0; i < tile; ++i) {
              // Broadcast straight from memory, the sign flip in vector
              // registers: no trip through a general-purpose register.
              Value runs = arith::XOrIOp::create(
                  b,
                  broadcastQuad(
                      b, loadI64(b, q, kb.add(records[i], kb.idx(8 * pair)))),
                  signBytes);
              Value x = target.emitPickBytes(b, runs, places);
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

  // Without the chunks of tokens every group of rows streamed all tokens'
  // activation records from memory.
  auto groupShare = kb.share(kb.idx(n / 16));
  kb.forTokenTiles(tokens, kTokenChunk, kTokenTile, groupShare.first,
                   groupShare.second, emitTile);
  return kb.finish();
}
