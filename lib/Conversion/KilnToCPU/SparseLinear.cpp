//===- SparseLinear.cpp - kiln.linear over compressed sparse weights ------===//
//
// A linear layer whose weight kiln-pack-weights stored compressed, 2:4
// (WeightLayout.h, nmBlockBytes: per 32-value block of Q4_0 or Q8_0 the f16
// scale, the 16 kept codes and their 2-bit places, 14 or 22 bytes instead
// of 18 or 34) or unstructured as a bitmap (bitmapWeightBytes:
// the scale, 32 keep bits and only the kept codes), rows interleaved by 16.
// Decode is bandwidth-bound, so the kernels read only those bytes, with
// int8 activations and the variant's byte dot product (CPUTarget), 16 rows
// per vector as the rows16 kernels. One loop serves both: a block's codes
// become byte-dot operands (SparseTerm), the formats differ only in how.
//
//===----------------------------------------------------------------------===//

#include "CPUTarget.h"
#include "KernelBuilder.h"
#include "StepLowering.h"

#include "mlir/Dialect/Math/IR/Math.h"

using namespace mlir;
using namespace mlir::kiln;

/// The ggml format a compressed weight keeps its codes in ("q4_0", "q8_0"),
/// or null when no sparse kernel reads it: 2:4 or bitmap.
static const char *sparseCodeFormat(WeightType type) {
  SparsityAttr s = type.getCompressedSparsity();
  QuantSchemeAttr q = type.getQuant();
  if (!s || !q || q.getLayout() != QuantLayout::GGUF)
    return nullptr;
  if (s.getKind() != SparsityKind::Bitmap &&
      (s.getKind() != SparsityKind::NM || s.getN() != 2 || s.getM() != 4))
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

static bool isBitmap(WeightType type) {
  return type.getCompressedSparsity().getKind() == SparsityKind::Bitmap;
}

LogicalResult mlir::kiln::checkSparseLinearWeight(Operation *op,
                                                  WeightType type) {
  if (!sparseCodeFormat(type))
    return op->emitOpError("the CPU lowering reads compressed sparse weights "
                           "only as 2:4 or bitmap Q4_0 or Q8_0, got ")
           << type;
  if (!isBitmap(type) && type.getInnerDim() % 64 != 0)
    return op->emitOpError("a compressed 2:4 weight needs K to be a multiple "
                           "of 64, got ")
           << type.getInnerDim();
  return success();
}

/// The same 8 (i64 `word`) or 4 (i32) bytes in every 8 or 4 bytes of a
/// 64-byte vector.
static Value broadcastWord(ImplicitLocOpBuilder &b, Value word) {
  int64_t width = word.getType().getIntOrFloatBitWidth();
  Value lanes = vector::BroadcastOp::create(
      b, VectorType::get({512 / width}, word.getType()), word);
  return vector::BitCastOp::create(b, VectorType::get({64}, b.getI8Type()),
                                   lanes);
}

static Value splatI32(ImplicitLocOpBuilder &b, int32_t v) {
  auto type = VectorType::get({16}, b.getI32Type());
  return arith::ConstantOp::create(
      b, DenseElementsAttr::get(type, b.getI32IntegerAttr(v)));
}

static Value splatI8(ImplicitLocOpBuilder &b, int8_t v) {
  auto type = VectorType::get({64}, b.getI8Type());
  return arith::ConstantOp::create(
      b, DenseElementsAttr::get(type, b.getI8IntegerAttr(v)));
}

static Value asBytes(ImplicitLocOpBuilder &b, Value v) {
  return vector::BitCastOp::create(b, VectorType::get({64}, b.getI8Type()), v);
}

namespace {

/// One byte dot product of a block for 16 rows: lane r of `codes`
/// (vector<64xi8>, unsigned, SparseCodec::codeOffset their zero) is row r's
/// 4 codes; they multiply `width` (4 or 8) activation bytes at byte `xAt`
/// of the block's record, broadcast, then picked by `places`
/// (emitPickBytes) where the codec picks.
struct SparseTerm {
  Value codes;
  int64_t xAt;
  int64_t width;
  Value places;
};

/// How a compressed format's blocks become SparseTerms. A group of 16 rows
/// starts at groupStart(g); a block there starts with the 16 rows' f16
/// scales; begin(base) starts decoding the block at `base`, term(i) gives
/// its i-th of `terms` terms (in order), and end() where the next block
/// starts.
struct SparseCodec {
  int64_t terms;
  /// The codes' zero (the rows16 kernels' unsigned form). Unpicked terms
  /// multiply every activation of the block: -offset * (the block's
  /// activation code sum) starts each token's sums. Picked terms (2:4)
  /// multiply the activations their places pick: offset * (a byte dot of
  /// ones with those) is taken off.
  int64_t codeOffset;
  /// Whether every term picks its activations (SparseTerm::places).
  bool picked;
  /// Bytes of a block of 16 rows, or about that: what is prefetched.
  int64_t blockBytes;
  function_ref<Value(Value)> groupStart;
  function_ref<void(Value)> begin;
  function_ref<SparseTerm(int64_t)> term;
  function_ref<Value()> end;
};

} // namespace

/// (q: memref<?xi8>, qOffset, w, wOffset, [bias, biasOffset,]
///  y: memref<?xNxf32>, tid, nth): y = x W^T with x as quantizeActivations
/// wrote it and W compressed as `codec` decodes it.
///
/// Activations are signed bytes, codes unsigned (SparseCodec::codeOffset).
/// The codes of a term are decoded once for all tokens of a tile; a token
/// costs a broadcast (and a pick) and a byte dot product per term (picked:
/// two, the second summing the picked activations).
static func::FuncOp buildSparseKernel(KernelBuilder &kb,
                                      const CPUTarget &target, WeightType type,
                                      int64_t k, int64_t n, bool hasBias,
                                      const SparseCodec &codec) {
  const unsigned bits = type.getQuant().getBits();
  const int64_t blocks = k / 32;
  // As the rows16 kernels: tokens per pass over a group's codes, and tokens
  // whose activation records stay in L2 while every group walks them.
  constexpr int64_t kTokenTile = 8;
  constexpr int64_t kTokenChunk = 64;
  constexpr int64_t kPrefetchBytes = 8192;

  // AVX2's vpmaddubsw pair sums: 8-bit codes are split into nibbles, fewer
  // bits added in i16 (CPUTarget::emitByteDots).
  CPUTarget dotTarget = target.forCodeBits(bits);
  CPUTarget onesTarget = target.forCodeBits(1);
  ImplicitLocOpBuilder &b = kb.b;
  Value q = kb.arg("q"), qOffset = kb.arg("qOffset");
  Value w = kb.arg("w");
  Value y = kb.arg("y");
  Value tokens = kb.dim(y, 0);
  Value biasView = kb.biasFloats(n);
  Type i8 = b.getI8Type();

  Value zeroI32 = splatI32(b, 0);
  Value oneBytes = splatI8(b, 1);
  Value offsetI32 = splatI32(b, int32_t(codec.codeOffset));

  // Rows 16g .. 16g+15 times tokens t0 .. t0+tile-1.
  auto emitTile = [&](Value g, Value t0, int64_t tile) {
    SmallVector<Value> inits(tile, kb.zeros());
    inits.push_back(codec.groupStart(g));
    auto loop = kb.loop(
        kb.idx(0), kb.idx(blocks), kb.idx(1), inits,
        [&](Value blk, ValueRange carried) -> SmallVector<Value> {
          Value base = carried.back();
          // As the rows16 kernels: one core's hardware prefetcher alone
          // leaves DRAM bandwidth unused.
          for (int64_t l = 0; l < codec.blockBytes; l += 64)
            memref::PrefetchOp::create(
                b, w, ValueRange{kb.add(base, kb.idx(kPrefetchBytes + l))},
                /*isWrite=*/false, /*localityHint=*/3, /*isDataCache=*/true);
          SmallVector<Value> records;
          for (int64_t i = 0; i < tile; ++i)
            records.push_back(kb.add(
                qOffset,
                kb.mul(
                    kb.add(kb.mul(kb.add(t0, kb.idx(i)), kb.idx(blocks)), blk),
                    kb.idx(kQ8RecordBytes))));
          SmallVector<Value> dots(tile, zeroI32);
          if (!codec.picked)
            for (int64_t i = 0; i < tile; ++i) {
              // The exact code sums of the block's two halves.
              Value sum = arith::AddIOp::create(
                  b, loadI32(b, q, kb.add(records[i], kb.idx(40))),
                  loadI32(b, q, kb.add(records[i], kb.idx(44))));
              Value start = arith::MulIOp::create(
                  b, sum,
                  arith::ConstantOp::create(
                      b, b.getI32IntegerAttr(-int32_t(codec.codeOffset))));
              dots[i] = vector::BroadcastOp::create(
                  b, VectorType::get({16}, b.getI32Type()), start);
            }
          codec.begin(base);
          SmallVector<SparseTerm> terms;
          SmallVector<Value> codes;
          for (int64_t j = 0; j < codec.terms; ++j) {
            terms.push_back(codec.term(j));
            codes.push_back(terms.back().codes);
          }
          for (int64_t i = 0; i < tile; ++i) {
            SmallVector<Value> xs;
            for (const SparseTerm &term : terms) {
              // Broadcast straight from memory: no trip through a
              // general-purpose register.
              Value at = kb.add(records[i], kb.idx(term.xAt));
              Value word =
                  term.width == 8 ? loadI64(b, q, at) : loadI32(b, q, at);
              Value x = broadcastWord(b, word);
              xs.push_back(codec.picked
                               ? target.emitPickBytes(b, x, term.places)
                               : x);
            }
            dots[i] = dotTarget.emitByteDots(b, dots[i], codes, xs);
            if (codec.picked) {
              SmallVector<Value> ones(xs.size(), oneBytes);
              Value pickedSum = onesTarget.emitByteDots(b, zeroI32, ones, xs);
              dots[i] = arith::SubIOp::create(
                  b, dots[i], arith::MulIOp::create(b, pickedSum, offsetI32));
            }
          }
          Value scales = vector::BitCastOp::create(
              b, VectorType::get({16}, b.getF16Type()),
              vector::LoadOp::create(b, VectorType::get({32}, i8), w,
                                     ValueRange{base}));
          Value scale = arith::ExtFOp::create(b, kb.vf32(), scales);
          SmallVector<Value> acc(carried.drop_back());
          for (int64_t i = 0; i < tile; ++i) {
            Value dx = kb.splat(loadF32(b, q, kb.add(records[i], kb.idx(32))));
            acc[i] = kb.fma(arith::SIToFPOp::create(b, kb.vf32(), dots[i]),
                            kb.mul(scale, dx), acc[i]);
          }
          acc.push_back(codec.end());
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

/// 2:4 (nmBlockBytes): a term per target, a pair of runs of 4 values. Lane
/// r of every vector is row r of a group of 16, and its 4 bytes the two
/// runs' kept codes (a code plane's nibbles or bytes) times the activation
/// bytes their places pick out of the two runs' 8 (a byte shuffle of them,
/// broadcast; the places: a 2-bit field of the places plane, plus 4 for the
/// second run): as many dot products as dense weights take per 16 values,
/// plus one summing the picked activations for the codes' zero.
static func::FuncOp build2of4Kernel(KernelBuilder &kb, const CPUTarget &target,
                                    WeightType type, int64_t k, int64_t n,
                                    bool hasBias) {
  const unsigned bits = type.getQuant().getBits();
  const int64_t codePlanes = bits == 8 ? 4 : 2;
  const int64_t codesAt = 32, placesAt = codesAt + 64 * codePlanes;
  const int64_t blockBytes = placesAt + 64;
  const int64_t groupBytes = k / 32 * blockBytes;
  ImplicitLocOpBuilder &b = kb.b;
  Value w = kb.arg("w"), wOffset = kb.arg("wOffset");
  auto i8x64 = VectorType::get({64}, b.getI8Type());
  // Bytes 2 and 3 of each row's four pick from the second run's 4 bytes.
  Value secondRun = asBytes(b, splatI32(b, 0x04040000));
  auto load64 = [&](Value at) -> Value {
    return vector::LoadOp::create(b, i8x64, w, ValueRange{at});
  };
  auto field = [&](Value v, int64_t shift, int64_t mask) {
    return emitByteField(b, v, shift, mask);
  };
  Value base;
  auto groupStart = [&](Value g) {
    return kb.add(wOffset, kb.mul(g, kb.idx(groupBytes)));
  };
  auto begin = [&](Value at) { base = at; };
  auto term = [&](int64_t t) -> SparseTerm {
    Value codes =
        bits == 8 ? load64(kb.add(base, kb.idx(codesAt + 64 * t)))
                  : field(load64(kb.add(base, kb.idx(codesAt + 64 * (t % 2)))),
                          4 * (t / 2), 0x0F);
    Value places = arith::AddIOp::create(
        b, field(load64(kb.add(base, kb.idx(placesAt))), 2 * t, 3),
        secondRun);
    return SparseTerm{codes, 8 * t, 8, places};
  };
  auto end = [&]() { return kb.add(base, kb.idx(blockBytes)); };
  return buildSparseKernel(
      kb, target, type, k, n, hasBias,
      SparseCodec{4, bits == 8 ? 128 : 8, /*picked=*/true, blockBytes,
                  groupStart, begin, term, end});
}

/// Bitmap (bitmapWeightBytes): a term per plane of 4 values x 16 rows, the
/// rows16 kernels' operand expanded from the kept codes: where keep bit i
/// of the plane is set, byte i is the next kept code (unsigned, as rows16
/// codes them), else the zero code; multiplied as rows16 does. Expanded per
/// 16-byte lane (4 rows), each lane's codes loaded at their own offset (the
/// popcounts of the mask before it): keep bits spread to bytes, their
/// in-lane prefix sums (4 shifts and adds) index a vpshufb of the lane's
/// codes. (AVX-512 VBMI2's vpexpandb would do it in one instruction; no
/// variant Kiln builds has it, and LLVM scalarizes llvm.masked.expandload
/// without it.)
static func::FuncOp buildBitmapKernel(KernelBuilder &kb,
                                      const CPUTarget &target, WeightType type,
                                      int64_t k, int64_t n, bool hasBias) {
  const unsigned bits = type.getQuant().getBits();
  ImplicitLocOpBuilder &b = kb.b;
  Value w = kb.arg("w"), wOffset = kb.arg("wOffset");
  Type i8 = b.getI8Type(), i64 = b.getI64Type();
  auto i8x64 = VectorType::get({64}, i8);
  // Bit i % 8 of byte i: byte i's keep bit in its broadcast mask byte.
  SmallVector<int8_t> bitOfByte(64);
  for (int64_t i = 0; i < 64; ++i)
    bitOfByte[i] = int8_t(1u << (i % 8));
  Value bitSelect = arith::ConstantOp::create(
      b, DenseElementsAttr::get(i8x64, ArrayRef<int8_t>(bitOfByte)));
  Value zeroBytes = splatI8(b, 0), noByte = splatI8(b, int8_t(0x80));
  Value oneBytes = splatI8(b, 1), eightBytes = splatI8(b, 8);
  auto i64Const = [&](int64_t v) -> Value {
    return arith::ConstantOp::create(b, b.getI64IntegerAttr(v));
  };
  auto concat = [&](Value x, Value y) -> Value {
    int64_t size = cast<VectorType>(x.getType()).getNumElements() * 2;
    SmallVector<int64_t> order(size);
    for (int64_t i = 0; i < size; ++i)
      order[i] = i;
    return vector::ShuffleOp::create(b, x, y, order);
  };

  Value cursor;
  auto groupStart = [&](Value g) {
    Value offset = loadI64(b, w, kb.add(wOffset, kb.mul(g, kb.idx(8))));
    return kb.add(wOffset,
                  arith::IndexCastUIOp::create(b, b.getIndexType(), offset));
  };
  Value masksAt;
  auto begin = [&](Value at) {
    masksAt = kb.add(at, kb.idx(32));
    cursor = kb.add(at, kb.idx(96));
  };
  auto term = [&](int64_t t) -> SparseTerm {
    Value mask = loadI64(b, w, kb.add(masksAt, kb.idx(8 * t)));
    // The lanes' codes, each quarter at its own offset.
    SmallVector<Value> quarters;
    for (int64_t l = 0; l < 4; ++l) {
      int64_t width = bits == 8 ? 16 : 8;
      quarters.push_back(vector::LoadOp::create(b, VectorType::get({width}, i8),
                                                w, ValueRange{cursor}));
      Value quarterBits = arith::AndIOp::create(
          b, arith::ShRUIOp::create(b, mask, i64Const(16 * l)),
          i64Const(0xffff));
      Value kept = arith::IndexCastUIOp::create(
          b, b.getIndexType(), math::CtPopOp::create(b, quarterBits));
      cursor = kb.add(cursor, bits == 8 ? kept : kb.div(kept, kb.idx(2)));
    }
    Value source = concat(concat(quarters[0], quarters[1]),
                          concat(quarters[2], quarters[3]));
    if (bits == 4) {
      // Nibble 2j (low) to byte 2j, nibble 2j+1 (high) to byte 2j+1.
      auto i16x32 = VectorType::get({32}, b.getI16Type());
      auto splat16 = [&](int16_t v) -> Value {
        return arith::ConstantOp::create(
            b, DenseElementsAttr::get(i16x32, b.getI16IntegerAttr(v)));
      };
      Value wide = arith::ExtUIOp::create(b, i16x32, source);
      source = vector::BitCastOp::create(
          b, i8x64,
          arith::OrIOp::create(
              b, arith::AndIOp::create(b, wide, splat16(0x0f)),
              arith::AndIOp::create(b,
                                    arith::ShLIOp::create(b, wide, splat16(4)),
                                    splat16(0x0f00))));
    }
    // Byte i: mask byte i / 8, then whether bit i % 8 of it is set.
    Value maskWord = vector::BitCastOp::create(
        b, VectorType::get({8}, i8),
        vector::BroadcastOp::create(b, VectorType::get({1}, i64), mask));
    SmallVector<int64_t> byteOfMask(64);
    for (int64_t i = 0; i < 64; ++i)
      byteOfMask[i] = i / 8;
    Value maskBytes =
        vector::ShuffleOp::create(b, maskWord, maskWord, byteOfMask);
    Value kept = arith::CmpIOp::create(
        b, arith::CmpIPredicate::ne,
        arith::AndIOp::create(b, maskBytes, bitSelect), zeroBytes);
    Value ones = arith::SelectOp::create(b, kept, oneBytes, zeroBytes);
    // In-lane inclusive prefix sums: kept byte i takes code (sum - 1).
    Value sums = ones;
    for (int64_t shift = 1; shift < 16; shift *= 2) {
      SmallVector<int64_t> lanes(64);
      for (int64_t i = 0; i < 64; ++i)
        lanes[i] = i % 16 >= shift ? i - shift : 64;
      sums = arith::AddIOp::create(
          b, sums, vector::ShuffleOp::create(b, sums, zeroBytes, lanes));
    }
    Value indices = arith::SelectOp::create(
        b, kept, arith::SubIOp::create(b, sums, oneBytes), noByte);
    Value codes = target.emitShuffleLanes16(b, source, indices);
    // The rows16 operand: unsigned codes, the zero (Q4_0's 8, Q8_0's
    // 128) where a value was not kept.
    if (bits == 4)
      codes = arith::SelectOp::create(b, kept, codes, eightBytes);
    else
      codes = arith::XOrIOp::create(b, codes, noByte);
    return SparseTerm{codes, 4 * t, 4, Value()};
  };
  auto end = [&]() { return cursor; };
  // About half the codes kept: 96 bytes of scales and masks, 256 of codes
  // (Q8_0) or 128 (Q4_0).
  return buildSparseKernel(kb, target, type, k, n, hasBias,
                           SparseCodec{8, bits == 4 ? 8 : 128,
                                       /*picked=*/false,
                                       96 + 16 * 16 * bits / 8, groupStart,
                                       begin, term, end});
}

func::FuncOp mlir::kiln::buildSparseLinearInt8Kernel(KernelLibrary &library,
                                                     WeightType type, int64_t k,
                                                     int64_t n, bool hasBias) {
  KernelSignature sig(library.getContext());
  sig.bytesAt("q").weightAndBias(hasBias);
  sig.rows("y", n);
  bool bitmap = isBitmap(type);
  KernelBuilder kb(library, sig,
                   "kiln_linear_q8_" + library.getTarget().getSymbolName() +
                       "_" + sparseCodeFormat(type) +
                       (bitmap ? "_bitmap_" : "_2of4_") + Twine(k) + "x" +
                       Twine(n) + (hasBias ? "_bias" : ""));
  const CPUTarget &target = library.getTarget();
  return bitmap ? buildBitmapKernel(kb, target, type, k, n, hasBias)
                : build2of4Kernel(kb, target, type, k, n, hasBias);
}
