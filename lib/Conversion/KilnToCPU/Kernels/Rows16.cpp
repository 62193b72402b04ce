//===- Rows16.cpp - kernels over rows16 weights ---------------------------===//

#include "CPUTarget.h"
#include "KernelBuilder.h"

using namespace mlir;
using namespace mlir::kiln;

//===----------------------------------------------------------------------===//
// linearRows16: int8 activations times rows16 weights, 16 rows per vector
//===----------------------------------------------------------------------===//

/// Tokens a rows16 kernel multiplies per pass over a block's codes, and
/// tokens whose activations it keeps hot in L2 while it walks all rows.
constexpr int64_t kRows16TokenTile = 8;
constexpr int64_t kRows16TokenChunk = 64;
/// How far ahead of the codes being multiplied the kernel prefetches.
constexpr int64_t kPrefetchBytes = 8192;

namespace {
/// Reads a rows16 weight (Rows16.h) in registers, 16 rows at a time.
struct Rows16Reader {
  KB &kb;
  const Rows16Format &format;
  Value w; // the weight bytes

  Value load64(Value at) {
    return vector::LoadOp::create(kb.b, VectorType::get({64}, kb.b.getI8Type()),
                                  w, ValueRange{at});
  }
  Value bytesSplat(int64_t v) {
    auto type = VectorType::get({64}, kb.b.getI8Type());
    return arith::ConstantOp::create(
        kb.b, DenseElementsAttr::get(type, kb.b.getI8IntegerAttr(v)));
  }
  /// 16 f16 values at `at`, widened.
  Value halves(Value at) {
    Value raw = vector::LoadOp::create(
        kb.b, VectorType::get({32}, kb.b.getI8Type()), w, ValueRange{at});
    Value h = vector::BitCastOp::create(
        kb.b, VectorType::get({kLanes}, kb.b.getF16Type()), raw);
    return arith::ExtFOp::create(kb.b, kb.vf32(), h);
  }
  /// 16 one-byte integers at `at`, widened to i32.
  Value bytes(Value at, bool isSigned) {
    auto i32x16 = VectorType::get({kLanes}, kb.b.getI32Type());
    Value raw = vector::LoadOp::create(
        kb.b, VectorType::get({kLanes}, kb.b.getI8Type()), w, ValueRange{at});
    return isSigned ? Value(arith::ExtSIOp::create(kb.b, i32x16, raw))
                    : Value(arith::ExtUIOp::create(kb.b, i32x16, raw));
  }
  Value toFloat(Value v) { return arith::SIToFPOp::create(kb.b, kb.vf32(), v); }
  Value toFloatScalar(Value v) {
    return arith::SIToFPOp::create(kb.b, kb.f32(), v);
  }

  /// The 8 targets of the block whose codes start at `at`: unsigned codes of
  /// values 4t..4t+3 of each of the 16 rows.
  SmallVector<Value> unpack(Value at) {
    ImplicitLocOpBuilder &b = kb.b;
    SmallVector<Value> t(8);
    if (format.codeBits == 8) {
      for (int64_t i = 0; i < 8; ++i)
        t[i] = load64(kb.add(at, kb.idx(64 * i)));
      return t;
    }
    Value nibbles = kb.add(at, kb.idx(64 * (format.codeBits - 4)));
    for (int64_t j = 0; j < 4; ++j) {
      Value x = load64(kb.add(nibbles, kb.idx(64 * j)));
      t[j] = arith::AndIOp::create(b, x, bytesSplat(0x0F));
      t[j + 4] = arith::ShRUIOp::create(b, x, bytesSplat(4));
    }
    if (format.codeBits == 4)
      return t;
    // Move each target's high bits to bit 4 (and 5), then merge.
    int64_t width = format.codeBits - 4,
            mask = format.codeBits == 5 ? 0x10 : 0x30;
    for (int64_t i = 0; i < 8; ++i) {
      int64_t plane = width == 1 ? 0 : i / 4;
      int64_t from = width == 1 ? i : 2 * (i % 4);
      Value p = load64(kb.add(at, kb.idx(64 * plane)));
      if (from < 4)
        p = arith::ShLIOp::create(b, p, bytesSplat(4 - from));
      else if (from > 4)
        p = arith::ShRUIOp::create(b, p, bytesSplat(from - 4));
      t[i] = arith::OrIOp::create(
          b, t[i], arith::AndIOp::create(b, p, bytesSplat(mask)));
    }
    return t;
  }

  /// Block j's per-row arithmetic: value = scale * code + min, or for
  /// half-block scales (Q6_K) d * (lo or hi) * code (then scale = d).
  struct Scales {
    Value scale, min, lo, hi;
  };
  /// `d`: halves(header), the first header field.
  Scales scales(Value header, Value d, int64_t j) {
    Scales s{d, {}, {}, {}};
    switch (format.kind) {
    case Rows16Kind::Q4_1:
    case Rows16Kind::Q5_1:
      s.min = halves(kb.add(header, kb.idx(32)));
      break;
    case Rows16Kind::Q4_K:
    case Rows16Kind::Q5_K: {
      Value sc = bytes(kb.add(header, kb.idx(64 + 16 * j)), false);
      Value m = bytes(kb.add(header, kb.idx(192 + 16 * j)), false);
      s.scale = kb.mul(d, toFloat(sc));
      s.min = arith::NegFOp::create(
          kb.b, kb.mul(halves(kb.add(header, kb.idx(32))), toFloat(m)));
      break;
    }
    case Rows16Kind::Q6_K:
      s.lo = bytes(kb.add(header, kb.idx(32 + 32 * j)), true);
      s.hi = bytes(kb.add(header, kb.idx(48 + 32 * j)), true);
      break;
    default:
      break;
    }
    return s;
  }
};
} // namespace

func::FuncOp KernelLibrary::linearRows16(const Rows16Format &format,
                                         int64_t k, int64_t n, bool hasBias,
                                         bool hasResidual, int64_t ropeHeadDim,
                                         StringRef cpu) {
  KernelSignature sig(module.getContext());
  sig.bytesAt("q").bytesAt("w");
  if (hasBias)
    sig.bytesAt("bias");
  if (hasResidual)
    sig.rows("residual", n);
  if (ropeHeadDim)
    sig.bytesAt("rope");
  sig.rows("y", n);
  CPUTarget target = CPUTarget::get(cpu);
  KernelBuilder kb(*this, sig,
                   "kiln_linear_r16_" + target.getSymbolName() + "_" +
                       format.name + "_" + Twine(k) + "x" + Twine(n) +
                       (hasBias ? "_bias" : "") +
                       (hasResidual ? "_residual" : "") +
                       (ropeHeadDim ? "_rope" + Twine(ropeHeadDim) : ""));
  ImplicitLocOpBuilder &b = kb.b;
  Value q = kb.arg("q"), qOffset = kb.arg("qOffset");
  Value w = kb.arg("w"), wOffset = kb.arg("wOffset");
  Value biasBuf = kb.optionalArg("bias"),
        biasOffset = kb.optionalArg("biasOffset");
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
  CPUTarget dotTarget = target.forCodeBits(format.codeBits);

  Rows16Reader reader{kb, format, w};
  auto i32x16 = VectorType::get({16}, b.getI32Type());

  Value tokens = kb.dim(y, 0);
  auto groupShare = kb.share(kb.idx(groups));
  Value g0 = groupShare.first, g1 = groupShare.second;
  Value biasView = hasBias ? kb.floatView(biasBuf, biasOffset, kb.idx(n))
                           : Value();
  Value zeroI32 = arith::ConstantOp::create(
      b, DenseElementsAttr::get(i32x16, b.getI32IntegerAttr(0)));

  // RoPE on adjacent pairs (llama style, rotary_dim = head_dim): lanes 2i
  // and 2i+1 are a pair, their (cos, sin) the table's 8 entries for this
  // token at the rows' place in the head.
  Value ropeView =
      ropeHeadDim ? kb.floatView(ropeTable, ropeOffset,
                                 kb.mul(tokens, kb.idx(ropeHeadDim)))
                  : Value();
  auto emitRopePairs = [&](Value v, Value t, Value row0) -> Value {
    Value at = kb.add(kb.mul(t, kb.idx(ropeHeadDim)),
                      kb.rem(row0, kb.idx(ropeHeadDim)));
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
          Value d = reader.halves(header);
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
              for (int64_t t = 0; t < 8; ++t) {
                Value x = vector::BroadcastOp::create(
                    b, i32x16, loadI32(b, q, kb.add(rec, kb.idx(4 * t))));
                x = vector::BitCastOp::create(
                    b, VectorType::get({64}, b.getI8Type()), x);
                half[t / 4] =
                    dotTarget.emitByteDot(b, half[t / 4], codes[t], x);
              }
              Value sum =
                  format.halfScales
                      ? arith::AddIOp::create(
                            b, arith::MulIOp::create(b, half[0], scLo),
                            arith::MulIOp::create(b, half[1], scHi))
                      : arith::AddIOp::create(b, half[0], half[1]);
              Value dx = kb.splat(loadF32(b, q, kb.add(rec, kb.idx(32))));
              acc[i] = kb.fma(reader.toFloat(sum), kb.mul(scale, dx), acc[i]);
              if (min)
                acc[i] = kb.fma(
                    min, kb.splat(loadF32(b, q, kb.add(rec, kb.idx(36)))),
                    acc[i]);
            }
          }
          return acc;
        });
    Value row0 = kb.mul(g, kb.idx(kRows16));
    Value bias = hasBias ? kb.load(biasView, {row0}) : Value();
    for (int64_t i = 0; i < tile; ++i) {
      Value v = loop.getResult(i);
      Value t = kb.add(t0, kb.idx(i));
      if (bias)
        v = kb.add(v, bias);
      if (residual)
        v = kb.add(kb.load(residual, {t, row0}), v);
      if (ropeHeadDim)
        v = emitRopePairs(v, t, row0);
      kb.store(v, y, {t, row0});
    }
  };

  // Chunks of tokens whose activations stay in L2; in a chunk, every group
  // of rows takes the tokens a tile at a time, then one by one.
  kb.loop(kb.idx(0), tokens, kb.idx(kRows16TokenChunk), {},
          [&](Value c0, ValueRange) {
            Value c1 = arith::MinUIOp::create(
                b, tokens, kb.add(c0, kb.idx(kRows16TokenChunk)));
            Value tiledEnd =
                kb.sub(c1, kb.rem(kb.sub(c1, c0), kb.idx(kRows16TokenTile)));
            kb.forEach(g0, g1, [&](Value g) {
              kb.loop(c0, tiledEnd, kb.idx(kRows16TokenTile), {},
                      [&](Value t0, ValueRange) {
                        emitTile(g, t0, kRows16TokenTile);
                        return SmallVector<Value>{};
                      });
              kb.forEach(tiledEnd, c1, [&](Value t) { emitTile(g, t, 1); });
            });
            return SmallVector<Value>{};
          });
  return kb.finish();
}

func::FuncOp KernelLibrary::embeddingRows16(const Rows16Format &format,
                                            int64_t vocab, int64_t dim,
                                            float scale) {
  KernelSignature sig(module.getContext());
  sig.bytesAt("table").ids("ids").rows("y", dim);
  KernelBuilder kb(*this, sig,
                   "kiln_embedding_r16_" + Twine(format.name) + "_" +
                       Twine(vocab) + "x" + Twine(dim) +
                       (scale == 1.0f ? "" : "_s" + floatName(scale)));
  ImplicitLocOpBuilder &b = kb.b;
  Type f32 = b.getF32Type();
  Value table = kb.arg("table"), offset = kb.arg("tableOffset");
  Value idsBuf = kb.arg("ids"), y = kb.arg("y");
  Rows16Reader reader{kb, format, table};
  const int64_t bps = format.superValues / 32;
  auto i32x16 = VectorType::get({kLanes}, b.getI32Type());
  auto i32x8 = VectorType::get({8}, b.getI32Type());
  auto i32x32 = VectorType::get({32}, b.getI32Type());
  auto f32x32 = VectorType::get({32}, f32);
  auto tokenShare = kb.share(kb.dim(y, 0));
  kb.forEach(tokenShare.first, tokenShare.second, [&](Value t) {
    Value id = memref::LoadOp::create(b, idsBuf, t);
    // Out-of-range ids are clamped so a bad token can never read outside the
    // table; the runtime rejects them before they get here.
    Value row = arith::IndexCastUIOp::create(b, b.getIndexType(), id);
    row = arith::MinUIOp::create(b, row, kb.idx(vocab - 1));
    Value group = kb.add(offset, kb.mul(kb.div(row, kb.idx(kRows16)),
                                        kb.idx(format.groupBytes(dim))));
    Value lane = kb.rem(row, kb.idx(kRows16));
    auto laneOf = [&](Value v) -> Value {
      return vector::ExtractOp::create(b, v, ArrayRef<OpFoldResult>{lane});
    };
    kb.forEach(kb.idx(0), kb.idx(dim / format.superValues), [&](Value s) {
      Value header = kb.add(group, kb.mul(s, kb.idx(format.headerBytes)));
      Value d = reader.halves(header);
      for (int64_t j = 0; j < bps; ++j) {
        Value blk = kb.add(kb.mul(s, kb.idx(bps)), kb.idx(j));
        SmallVector<Value> targets = reader.unpack(kb.add(
            group, kb.add(kb.idx(format.headerRegionBytes(dim)),
                          kb.mul(blk, kb.idx(format.blockCodeBytes())))));
        // This row's 4 codes of each target are values 4t..4t+3, in order.
        SmallVector<Value> words;
        for (Value target : targets)
          words.push_back(laneOf(vector::BitCastOp::create(b, i32x16, target)));
        Value packed = vector::FromElementsOp::create(b, i32x8, words);
        Value codes = arith::ExtUIOp::create(
            b, i32x32,
            vector::BitCastOp::create(
                b, VectorType::get({32}, b.getI8Type()), packed));
        if (format.offset)
          codes = arith::SubIOp::create(
              b, codes,
              arith::ConstantOp::create(
                  b, DenseElementsAttr::get(
                         i32x32, b.getI32IntegerAttr(format.offset))));
        Rows16Reader::Scales sc = reader.scales(header, d, j);
        Value weightScale =
            vector::BroadcastOp::create(b, f32x32, laneOf(sc.scale));
        if (sc.lo) {
          // Q6_K: values 0..15 take the low half's scale, 16..31 the high's.
          Value lo =
              kb.mul(laneOf(sc.scale), reader.toFloatScalar(laneOf(sc.lo)));
          Value hi =
              kb.mul(laneOf(sc.scale), reader.toFloatScalar(laneOf(sc.hi)));
          SmallVector<int64_t> halves;
          for (int64_t v = 0; v < 32; ++v)
            halves.push_back(v < 16 ? 0 : 1);
          Value pair = vector::FromElementsOp::create(
              b, VectorType::get({2}, f32), ValueRange{lo, hi});
          weightScale = vector::ShuffleOp::create(b, pair, pair, halves);
        }
        Value values =
            kb.mul(arith::SIToFPOp::create(b, f32x32, codes), weightScale);
        if (sc.min)
          values = kb.add(
              values, vector::BroadcastOp::create(b, f32x32, laneOf(sc.min)));
        if (scale != 1.0f)
          values = kb.mul(values, vector::BroadcastOp::create(b, f32x32,
                                                              kb.f(scale)));
        vector::StoreOp::create(b, values, y,
                                ValueRange{t, kb.mul(blk, kb.idx(32))});
      }
    });
  });
  return kb.finish();
}
