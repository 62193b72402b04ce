//===- CPUKernels.cpp - kernel functions the CPU lowering calls -----------===//

#include "Kernels/CPUTarget.h"
#include "Kernels/KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>

using namespace mlir;
using namespace mlir::kiln;

MemRefType mlir::kiln::getRowsType(MLIRContext *ctx, int64_t cols, Type elt) {
  // A dynamic offset lets callers pass row slices of larger buffers.
  auto layout = StridedLayoutAttr::get(ctx, ShapedType::kDynamic, {cols, 1});
  return MemRefType::get({ShapedType::kDynamic, cols}, elt, layout);
}

MemRefType mlir::kiln::getIdsType(MLIRContext *ctx) {
  auto layout = StridedLayoutAttr::get(ctx, ShapedType::kDynamic, {1});
  return MemRefType::get({ShapedType::kDynamic}, IntegerType::get(ctx, 32),
                         layout);
}

func::FuncOp KernelLibrary::start(StringRef family, FunctionType type,
                                  OpBuilder &b) {
  OpBuilder mb = OpBuilder::atBlockEnd(module.getBody());
  auto fn = func::FuncOp::create(mb, module.getLoc(), family, type);
  fn.setPrivate();
  Block *entry = fn.addEntryBlock();
  b.setInsertionPointToStart(entry);
  return fn;
}

/// A hash of a kernel's code: every op's name, attributes and properties,
/// operand wiring (values numbered in definition order) and types. Attributes
/// and types are uniqued in the context, so their pointers stand for their
/// values within one compilation.
static llvm::hash_code hashKernelCode(func::FuncOp fn) {
  llvm::DenseMap<Value, unsigned> ids;
  llvm::hash_code h = llvm::hash_value(fn.getFunctionType().getAsOpaquePointer());
  auto number = [&](Region &region) {
    for (Block &block : region)
      for (BlockArgument arg : block.getArguments()) {
        ids.try_emplace(arg, ids.size());
        h = llvm::hash_combine(h, arg.getType().getAsOpaquePointer());
      }
  };
  number(fn.getBody());
  fn.getBody().walk<WalkOrder::PreOrder>([&](Operation *op) {
    h = llvm::hash_combine(h, op->getName().getAsOpaquePointer(),
                           op->getRawDictionaryAttrs().getAsOpaquePointer(),
                           op->hashProperties(), op->getNumRegions(),
                           op->getNumSuccessors());
    for (Value v : op->getOperands())
      h = llvm::hash_combine(h, ids.lookup(v));
    for (Value r : op->getResults()) {
      ids.try_emplace(r, ids.size());
      h = llvm::hash_combine(h, r.getType().getAsOpaquePointer());
    }
    for (Region &region : op->getRegions())
      number(region);
  });
  return h;
}

func::FuncOp KernelLibrary::finish(func::FuncOp fn) {
  // The kernel's identity is its code: ops that differ in any constant the
  // builder baked in (a rope base of 10000.5, an attention scale) get kernels
  // of their own, whatever the family name leaves out. Names stay
  // deterministic: the family's first kernel takes the family name, the
  // next ones `<family>_1`, `<family>_2`, ...
  llvm::hash_code code = hashKernelCode(fn);
  std::vector<BuiltKernel> &family = kernelFamilies[fn.getSymName()];
  for (BuiltKernel &built : family) {
    if (built.code == code &&
        built.fn.getFunctionType() == fn.getFunctionType() &&
        OperationEquivalence::isRegionEquivalentTo(
            &built.fn.getBody(), &fn.getBody(),
            OperationEquivalence::IgnoreLocations)) {
      fn.erase();
      return built.fn;
    }
  }
  if (!family.empty())
    fn.setSymName((fn.getSymName() + "_" + Twine(family.size())).str());
  family.push_back({code, fn});
  return fn;
}

func::FuncOp KernelLibrary::barrier() {
  MLIRContext *ctx = module.getContext();
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  KernelSignature sig(ctx);
  sig.pointer("rt").withoutThreads();
  KernelBuilder kernel(*this, "kiln_barrier", sig);
  ImplicitLocOpBuilder &b = kernel.b;
  Value rt = kernel.arg("rt");
  // KilnRtContext's first field is `void (*barrier)(KilnRtContext *)`.
  Value callee = LLVM::LoadOp::create(b, ptr, rt);
  auto fnType = LLVM::LLVMFunctionType::get(LLVM::LLVMVoidType::get(ctx), {ptr});
  LLVM::CallOp::create(b, fnType, ValueRange{callee, rt});
  return kernel.finish();
}

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
  std::string name = ("kiln_linear_" + format.getName() + "_" + Twine(k) +
                      "x" + Twine(n) + (hasBias ? "_bias" : ""))
                         .str();
  KernelBuilder kernel(*this, name, sig);
  ImplicitLocOpBuilder &b = kernel.b;
  KB &kb = kernel.kb;
  Value x = kernel.arg("x"), w = kernel.arg("w"),
        wOffset = kernel.arg("wOffset"), y = kernel.arg("y");
  Value biasBuf = kernel.optionalArg("bias"),
        biasOffset = kernel.optionalArg("biasOffset");
  Value tid = kernel.tid(), nth = kernel.nth();

  int64_t chunkValues = format.getChunkValues();
  int64_t parts = chunkValues / kLanes;
  Value tokens = kb.dim(x, 0);
  Value biasView = hasBias ? kb.floatView(biasBuf, biasOffset, kb.idx(n))
                           : Value();
  auto [rowBegin, rowEnd] = kb.share(kb.idx(n), tid, nth);
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
  return kernel.finish();
}

//===----------------------------------------------------------------------===//
// int8 activations: quantize once per input, integer dot products per block
//===----------------------------------------------------------------------===//

/// f32 -> f16 -> f32: the precision ggml stores block scales in.
static Value roundToF16(ImplicitLocOpBuilder &b, Value v) {
  Value h = arith::TruncFOp::create(b, b.getF16Type(), v);
  return arith::ExtFOp::create(b, b.getF32Type(), h);
}

static void storeF32(ImplicitLocOpBuilder &b, Value v, Value bytes,
                     Value offset) {
  Value vec = vector::BroadcastOp::create(
      b, VectorType::get({1}, b.getF32Type()), v);
  Value raw = vector::BitCastOp::create(
      b, VectorType::get({4}, b.getI8Type()), vec);
  vector::StoreOp::create(b, raw, bytes, ValueRange{offset});
}

static void storeI32(ImplicitLocOpBuilder &b, Value v, Value bytes,
                     Value offset) {
  Value vec = vector::BroadcastOp::create(
      b, VectorType::get({1}, b.getI32Type()), v);
  Value raw = vector::BitCastOp::create(
      b, VectorType::get({4}, b.getI8Type()), vec);
  vector::StoreOp::create(b, raw, bytes, ValueRange{offset});
}

static Value loadF32(ImplicitLocOpBuilder &b, Value bytes, Value offset) {
  Value raw = vector::LoadOp::create(b, VectorType::get({4}, b.getI8Type()),
                                     bytes, ValueRange{offset});
  Value vec = vector::BitCastOp::create(
      b, VectorType::get({1}, b.getF32Type()), raw);
  return vector::ExtractOp::create(b, vec, ArrayRef<int64_t>{0});
}

/// Quantizes x[t, col .. col + 32) into the kQ8RecordBytes record at byte
/// `rec` of `q` (see quantizeActivations).
static void emitQuantizeBlock(KB &kb, Value x, Value t, Value col, Value q,
                              Value rec) {
  ImplicitLocOpBuilder &b = kb.b;
  auto i32x16 = VectorType::get({kLanes}, b.getI32Type());
  auto i8x16 = VectorType::get({kLanes}, b.getI8Type());
  Value v0 = kb.load(x, {t, col});
  Value v1 = kb.load(x, {t, kb.add(col, kb.idx(16))});
  Value amaxV = kb.maxf(math::AbsFOp::create(b, v0), math::AbsFOp::create(b, v1));
  Value amax = vector::ReductionOp::create(b, vector::CombiningKind::MAXIMUMF,
                                           amaxV);
  Value d = kb.div(amax, kb.f(127.0f));
  Value nonzero = arith::CmpFOp::create(b, arith::CmpFPredicate::ONE, amax,
                                        kb.f(0.0f));
  Value inv = arith::SelectOp::create(b, nonzero, kb.div(kb.f(127.0f), amax),
                                      kb.f(0.0f));
  Value invV = kb.splat(inv);
  Value q0 = arith::FPToSIOp::create(
      b, i32x16, math::RoundEvenOp::create(b, kb.mul(v0, invV)));
  Value q1 = arith::FPToSIOp::create(
      b, i32x16, math::RoundEvenOp::create(b, kb.mul(v1, invV)));
  Value sumLo = vector::ReductionOp::create(b, vector::CombiningKind::ADD, q0);
  Value sumHi = vector::ReductionOp::create(b, vector::CombiningKind::ADD, q1);
  Value sum = arith::AddIOp::create(b, sumLo, sumHi);
  SmallVector<int64_t> order(32);
  for (int64_t i = 0; i < 32; ++i)
    order[i] = i;
  Value codes = vector::ShuffleOp::create(
      b, arith::TruncIOp::create(b, i8x16, q0),
      arith::TruncIOp::create(b, i8x16, q1), order);
  vector::StoreOp::create(b, codes, q, ValueRange{rec});
  Value sumF = arith::SIToFPOp::create(b, kb.f32(), sum);
  storeF32(b, roundToF16(b, d), q, kb.add(rec, kb.idx(32)));
  storeF32(b, roundToF16(b, kb.mul(d, sumF)), q, kb.add(rec, kb.idx(36)));
  storeI32(b, sumLo, q, kb.add(rec, kb.idx(40)));
  storeI32(b, sumHi, q, kb.add(rec, kb.idx(44)));
}

func::FuncOp KernelLibrary::quantizeActivations(int64_t k) {
  KernelSignature sig(module.getContext());
  sig.rows("x", k).bytesAt("q");
  KernelBuilder kernel(*this, ("kiln_quantize_q8_" + Twine(k)).str(), sig);
  KB &kb = kernel.kb;
  Value x = kernel.arg("x"), q = kernel.arg("q"),
        qOffset = kernel.arg("qOffset"), tid = kernel.tid(),
        nth = kernel.nth();
  int64_t perRow = k / 32;
  auto [i0, i1] = kb.share(kb.mul(kb.dim(x, 0), kb.idx(perRow)), tid, nth);
  kb.forEach(i0, i1, [&](Value blk) {
    Value t = kb.div(blk, kb.idx(perRow));
    Value col = kb.mul(kb.rem(blk, kb.idx(perRow)), kb.idx(32));
    emitQuantizeBlock(kb, x, t, col, q,
                      kb.add(qOffset, kb.mul(blk, kb.idx(kQ8RecordBytes))));
  });
  return kernel.finish();
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
  std::string name = ("kiln_linear_q8_" + target.getSymbolName() + "_" +
                      format.getName() + "_" + Twine(k) + "x" + Twine(n) +
                      (hasBias ? "_bias" : ""))
                         .str();
  KernelBuilder kernel(*this, name, sig);
  ImplicitLocOpBuilder &b = kernel.b;
  KB &kb = kernel.kb;
  Value q = kernel.arg("q"), qOffset = kernel.arg("qOffset"),
        w = kernel.arg("w"), wOffset = kernel.arg("wOffset"),
        y = kernel.arg("y");
  Value biasBuf = kernel.optionalArg("bias"),
        biasOffset = kernel.optionalArg("biasOffset");
  Value tid = kernel.tid(), nth = kernel.nth();
  int64_t blocks = k / 32;
  Value tokens = kb.dim(y, 0);
  Value biasView = hasBias ? kb.floatView(biasBuf, biasOffset, kb.idx(n))
                           : Value();
  auto rowShare = kb.share(kb.idx(n), tid, nth);
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
      rowBases.push_back(kb.add(
          wOffset, kb.mul(kb.add(row0, kb.idx(r)), kb.idx(format.getRowBytes()))));
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
          halves.push_back(vector::LoadOp::create(b, i8x32, q, ValueRange{rec}));
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
  Value pairedEnd = kb.add(rowBegin, kb.sub(rowCount, kb.rem(rowCount, kb.idx(2))));
  kb.forEach(tiledTokens, tokens, [&](Value t0) {
    kb.loop(rowBegin, pairedEnd, kb.idx(2), {}, [&](Value row, ValueRange) {
      emitTile(row, 2, t0, 1);
      return SmallVector<Value>{};
    });
    kb.forEach(pairedEnd, rowEnd, [&](Value row) { emitTile(row, 1, t0, 1); });
  });
  return kernel.finish();
}

//===----------------------------------------------------------------------===//
// linearRows16: int8 activations times rows16 weights, 16 rows per vector
//===----------------------------------------------------------------------===//

static Value loadI32(ImplicitLocOpBuilder &b, Value bytes, Value offset) {
  Value raw = vector::LoadOp::create(b, VectorType::get({4}, b.getI8Type()),
                                     bytes, ValueRange{offset});
  Value vec = vector::BitCastOp::create(
      b, VectorType::get({1}, b.getI32Type()), raw);
  return vector::ExtractOp::create(b, vec, ArrayRef<int64_t>{0});
}

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
    int64_t width = format.codeBits - 4, mask = format.codeBits == 5 ? 0x10 : 0x30;
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
  std::string name = ("kiln_linear_r16_" + target.getSymbolName() + "_" +
                      format.name + "_" + Twine(k) + "x" + Twine(n) +
                      (hasBias ? "_bias" : "") +
                      (hasResidual ? "_residual" : "") +
                      (ropeHeadDim ? "_rope" + Twine(ropeHeadDim) : ""))
                         .str();
  KernelBuilder kernel(*this, name, sig);
  ImplicitLocOpBuilder &b = kernel.b;
  KB &kb = kernel.kb;
  Value q = kernel.arg("q"), qOffset = kernel.arg("qOffset"),
        w = kernel.arg("w"), wOffset = kernel.arg("wOffset"),
        y = kernel.arg("y");
  Value biasBuf = kernel.optionalArg("bias"),
        biasOffset = kernel.optionalArg("biasOffset");
  Value residual = kernel.optionalArg("residual");
  Value ropeTable = kernel.optionalArg("rope"),
        ropeOffset = kernel.optionalArg("ropeOffset");
  Value tid = kernel.tid(), nth = kernel.nth();

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
  auto groupShare = kb.share(kb.idx(groups), tid, nth);
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
            Value codeAt = kb.add(
                group, kb.add(kb.idx(headerRegion), kb.mul(blk, kb.idx(codeBytes))));
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
                  kb.mul(kb.add(kb.mul(kb.add(t0, kb.idx(i)), kb.idx(blocks)), blk),
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
                half[t / 4] = dotTarget.emitByteDot(b, half[t / 4], codes[t], x);
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
  return kernel.finish();
}

func::FuncOp KernelLibrary::embeddingRows16(const Rows16Format &format,
                                            int64_t vocab, int64_t dim,
                                            float scale) {
  KernelSignature sig(module.getContext());
  sig.bytesAt("table").ids("ids").rows("y", dim);
  std::string name = ("kiln_embedding_r16_" + Twine(format.name) + "_" +
                      Twine(vocab) + "x" + Twine(dim) +
                      (scale == 1.0f ? "" : "_s" + floatName(scale)))
                         .str();
  KernelBuilder kernel(*this, name, sig);
  ImplicitLocOpBuilder &b = kernel.b;
  KB &kb = kernel.kb;
  Type f32 = b.getF32Type();
  Value table = kernel.arg("table"), offset = kernel.arg("tableOffset"),
        idsBuf = kernel.arg("ids"), y = kernel.arg("y"), tid = kernel.tid(),
        nth = kernel.nth();
  Rows16Reader reader{kb, format, table};
  const int64_t bps = format.superValues / 32;
  auto i32x16 = VectorType::get({kLanes}, b.getI32Type());
  auto i32x8 = VectorType::get({8}, b.getI32Type());
  auto i32x32 = VectorType::get({32}, b.getI32Type());
  auto f32x32 = VectorType::get({32}, f32);
  auto tokenShare = kb.share(kb.dim(y, 0), tid, nth);
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
          Value lo = kb.mul(laneOf(sc.scale), reader.toFloatScalar(laneOf(sc.lo)));
          Value hi = kb.mul(laneOf(sc.scale), reader.toFloatScalar(laneOf(sc.hi)));
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
          values = kb.add(values,
                          vector::BroadcastOp::create(b, f32x32, laneOf(sc.min)));
        if (scale != 1.0f)
          values = kb.mul(values, vector::BroadcastOp::create(b, f32x32,
                                                              kb.f(scale)));
        vector::StoreOp::create(b, values, y,
                                ValueRange{t, kb.mul(blk, kb.idx(32))});
      }
    });
  });
  return kernel.finish();
}

//===----------------------------------------------------------------------===//
// embedding: y[t, :] = dequant(table[ids[t], :])
//===----------------------------------------------------------------------===//

func::FuncOp KernelLibrary::embedding(const WeightFormat &format,
                                      int64_t vocab, int64_t dim,
                                      float scale) {
  KernelSignature sig(module.getContext());
  sig.bytesAt("table").ids("ids").rows("y", dim);
  std::string name = ("kiln_embedding_" + format.getName() + "_" + Twine(vocab) +
                      "x" + Twine(dim) +
                      (scale == 1.0f ? "" : "_s" + floatName(scale)))
                         .str();
  KernelBuilder kernel(*this, name, sig);
  ImplicitLocOpBuilder &b = kernel.b;
  KB &kb = kernel.kb;
  Value table = kernel.arg("table"), offset = kernel.arg("tableOffset"),
        idsBuf = kernel.arg("ids"), y = kernel.arg("y"), tid = kernel.tid(),
        nth = kernel.nth();
  auto [t0, t1] = kb.share(kb.dim(y, 0), tid, nth);
  int64_t chunkValues = format.getChunkValues();
  kb.forEach(t0, t1, [&](Value t) {
    Value id = memref::LoadOp::create(b, idsBuf, t);
    // Out-of-range ids are clamped so a bad token can never read outside the
    // table; the runtime rejects them before they get here.
    Value idIndex = arith::IndexCastUIOp::create(b, b.getIndexType(), id);
    idIndex = arith::MinUIOp::create(b, idIndex, kb.idx(vocab - 1));
    Value rowBase =
        kb.add(offset, kb.mul(idIndex, kb.idx(format.getRowBytes())));
    kb.forEach(kb.idx(0), kb.idx(dim / chunkValues), [&](Value c) {
      SmallVector<Value> values = format.emitChunk(b, table, rowBase, c);
      for (auto [p, v] : llvm::enumerate(values)) {
        if (scale != 1.0f)
          v = kb.mul(v, kb.splat(kb.f(scale)));
        kb.store(v, y,
                 {t, kb.add(kb.mul(c, kb.idx(chunkValues)),
                            kb.idx(int64_t(p) * kLanes))});
      }
    });
  });
  return kernel.finish();
}

//===----------------------------------------------------------------------===//
// rms_norm / layer_norm over rows
//===----------------------------------------------------------------------===//

func::FuncOp KernelLibrary::norm(const WeightFormat &weight, int64_t dim,
                                 float epsilon, bool layerNorm, bool hasBias,
                                 bool quantize) {
  KernelSignature sig(module.getContext());
  sig.rows("x", dim).bytesAt("w");
  if (hasBias)
    sig.bytesAt("bias");
  sig.rows("y", dim);
  if (quantize)
    sig.bytesAt("q");
  std::string name = ((layerNorm ? "kiln_layer_norm_" : "kiln_rms_norm_") +
                      weight.getName() + "_" + Twine(dim) + "_eps" +
                      floatName(epsilon) + (hasBias ? "_bias" : "") +
                      (quantize ? "_q8" : ""))
                         .str();
  KernelBuilder kernel(*this, name, sig);
  ImplicitLocOpBuilder &b = kernel.b;
  KB &kb = kernel.kb;
  Value x = kernel.arg("x"), w = kernel.arg("w"),
        wOffset = kernel.arg("wOffset"), y = kernel.arg("y");
  Value bBuf = kernel.optionalArg("bias"),
        bOffset = kernel.optionalArg("biasOffset");
  Value q = kernel.optionalArg("q"), qOffset = kernel.optionalArg("qOffset");
  Value tid = kernel.tid(), nth = kernel.nth();
  auto [t0, t1] = kb.share(kb.dim(x, 0), tid, nth);
  Value chunks = kb.idx(dim / kLanes);
  kb.forEach(t0, t1, [&](Value t) {
    auto col = [&](Value c) { return kb.mul(c, kb.idx(kLanes)); };
    Value mean = kb.f(0.0f);
    if (layerNorm) {
      auto s = kb.loop(kb.idx(0), chunks, kb.idx(1), {kb.zeros()},
                       [&](Value c, ValueRange acc) {
                         return SmallVector<Value>{
                             kb.add(acc[0], kb.load(x, {t, col(c)}))};
                       });
      mean = kb.div(kb.sum(s.getResult(0)), kb.f(float(dim)));
    }
    Value meanV = kb.splat(mean);
    auto sq = kb.loop(kb.idx(0), chunks, kb.idx(1), {kb.zeros()},
                      [&](Value c, ValueRange acc) {
                        Value v = kb.sub(kb.load(x, {t, col(c)}), meanV);
                        return SmallVector<Value>{kb.fma(v, v, acc[0])};
                      });
    Value var = kb.div(kb.sum(sq.getResult(0)), kb.f(float(dim)));
    Value scale = kb.div(kb.f(1.0f),
                         math::SqrtOp::create(b, kb.add(var, kb.f(epsilon))));
    Value scaleV = kb.splat(scale);
    kb.forEach(kb.idx(0), chunks, [&](Value c) {
      Value v = kb.mul(kb.sub(kb.load(x, {t, col(c)}), meanV), scaleV);
      v = kb.mul(v, weight.emitChunk(b, w, wOffset, c)[0]);
      if (hasBias)
        v = kb.add(v, weight.emitChunk(b, bBuf, bOffset, c)[0]);
      kb.store(v, y, {t, col(c)});
    });
    // The row is in L1: quantize it for the linear layers that read it.
    if (quantize)
      kb.forEach(kb.idx(0), kb.idx(dim / 32), [&](Value blk) {
        Value rec = kb.mul(kb.add(kb.mul(t, kb.idx(dim / 32)), blk),
                           kb.idx(kQ8RecordBytes));
        emitQuantizeBlock(kb, y, t, kb.mul(blk, kb.idx(32)), q,
                          kb.add(qOffset, rec));
      });
  });
  return kernel.finish();
}

//===----------------------------------------------------------------------===//
// rope
//===----------------------------------------------------------------------===//

static std::string ropeName(StringRef kind, const RopeConfig &cfg) {
  return llvm::formatv("kiln_{0}_{1}_{2}x{3}_r{4}_b{5}_s{6}", kind,
                       cfg.neox ? "neox" : "llama", cfg.numHeads, cfg.headDim,
                       cfg.rotaryDim, int64_t(cfg.freqBase),
                       int64_t(cfg.freqScale * 1000000))
      .str();
}

func::FuncOp KernelLibrary::ropeTable(const RopeConfig &cfg) {
  RopeConfig key = cfg;
  key.neox = false;
  key.numHeads = key.headDim = 0;
  KernelSignature sig(module.getContext());
  sig.index("position").index("tokens").bytesAt("table");
  KernelBuilder kernel(*this, ropeName("rope_table", key), sig);
  ImplicitLocOpBuilder &b = kernel.b;
  KB &kb = kernel.kb;
  Value position = kernel.arg("position"), tokens = kernel.arg("tokens"),
        table = kernel.arg("table"), offset = kernel.arg("tableOffset"),
        tid = kernel.tid(), nth = kernel.nth();
  int64_t half = cfg.rotaryDim / 2;
  Value view = kb.floatView(table, offset, kb.mul(tokens, kb.idx(2 * half)));
  auto [t0, t1] = kb.share(tokens, tid, nth);
  // theta_i = p * base^(-2i/d), built by repeated multiplication in f32 as
  // ggml does, so Kiln's rotations match llama.cpp's as far as cos/sin allow.
  float thetaScale = std::pow(cfg.freqBase, -2.0f / float(cfg.rotaryDim));
  kb.forEach(t0, t1, [&](Value t) {
    Value p = kb.toF32(kb.add(position, t));
    Value rowBase = kb.mul(t, kb.idx(2 * half));
    kb.loop(kb.idx(0), kb.idx(half), kb.idx(1), {p},
            [&](Value i, ValueRange theta) {
              Value angle = kb.mul(theta[0], kb.f(cfg.freqScale));
              Value at = kb.add(rowBase, kb.mul(i, kb.idx(2)));
              memref::StoreOp::create(b, math::CosOp::create(b, angle), view, at);
              memref::StoreOp::create(b, math::SinOp::create(b, angle), view,
                                      kb.add(at, kb.idx(1)));
              return SmallVector<Value>{kb.mul(theta[0], kb.f(thetaScale))};
            });
  });
  return kernel.finish();
}

func::FuncOp KernelLibrary::rope(const RopeConfig &cfg) {
  KernelSignature sig(module.getContext());
  sig.rows("x", cfg.width).bytesAt("table").rows("y", cfg.width);
  KernelBuilder kernel(*this, ropeName("rope", cfg), sig);
  ImplicitLocOpBuilder &b = kernel.b;
  KB &kb = kernel.kb;
  Value x = kernel.arg("x"), table = kernel.arg("table"),
        offset = kernel.arg("tableOffset"), y = kernel.arg("y"),
        tid = kernel.tid(), nth = kernel.nth();
  int64_t half = cfg.rotaryDim / 2;
  Value tokens = kb.dim(x, 0);
  Value view = kb.floatView(table, offset, kb.mul(tokens, kb.idx(2 * half)));
  Value heads = kb.idx(cfg.numHeads);
  auto [i0, i1] = kb.share(kb.mul(tokens, heads), tid, nth);
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
  return kernel.finish();
}

//===----------------------------------------------------------------------===//
// attention over the KV cache
//===----------------------------------------------------------------------===//

func::FuncOp KernelLibrary::attention(const AttentionConfig &cfg) {
  int64_t qWidth = cfg.numHeads * cfg.headDim;
  int64_t kvWidth = cfg.kvHeads * cfg.headDim;
  KernelSignature sig(module.getContext());
  sig.rows("q", qWidth).rows("k", kvWidth).rows("v", kvWidth).bytes("cache");
  sig.index("position").rows("y", qWidth).pointer("rt");
  std::string name =
      llvm::formatv("kiln_attention_h{0}_kv{1}_d{2}_L{3}_c{4}_l{5}_w{6}_{7}{8}",
                    cfg.numHeads, cfg.kvHeads, cfg.headDim, cfg.layers,
                    cfg.context, cfg.layer, cfg.window,
                    cfg.causal ? "causal" : "full",
                    cfg.softcap > 0 ? "_capped" : "")
          .str();
  KernelBuilder kernel(*this, name, sig);
  ImplicitLocOpBuilder &b = kernel.b;
  KB &kb = kernel.kb;
  Value q = kernel.arg("q"), k = kernel.arg("k"), v = kernel.arg("v"),
        cacheBytes = kernel.arg("cache"), position = kernel.arg("position"),
        y = kernel.arg("y"), rt = kernel.arg("rt"), tid = kernel.tid(),
        nth = kernel.nth();
  Value tokens = kb.dim(q, 0);
  // Cache layout: [2 (keys, values)][layers][context][kv_heads][head_dim] f32.
  int64_t planeElems = cfg.layers * cfg.context * kvWidth;
  Value cache = kb.floatView(cacheBytes, kb.idx(0), kb.idx(2 * planeElems));
  int64_t layerBase = cfg.layer * cfg.context * kvWidth;
  auto slot = [&](int64_t plane, Value pos) {
    return kb.add(kb.idx(plane * planeElems + layerBase),
                  kb.mul(pos, kb.idx(kvWidth)));
  };
  int64_t chunks = cfg.headDim / kLanes;

  // 1. Append the new keys and values at positions position + t.
  auto [t0, t1] = kb.share(tokens, tid, nth);
  kb.forEach(t0, t1, [&](Value t) {
    Value pos = kb.add(position, t);
    Value inside = arith::CmpIOp::create(b, arith::CmpIPredicate::ult, pos,
                                         kb.idx(cfg.context));
    auto guard = scf::IfOp::create(b, inside, /*withElseRegion=*/false);
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(guard.thenBlock()->getTerminator());
    kb.forEach(kb.idx(0), kb.idx(kvWidth / kLanes), [&](Value c) {
      Value col = kb.mul(c, kb.idx(kLanes));
      kb.store(kb.load(k, {t, col}), cache, {kb.add(slot(0, pos), col)});
      kb.store(kb.load(v, {t, col}), cache, {kb.add(slot(1, pos), col)});
    });
  });
  func::CallOp::create(b, barrier(), ValueRange{rt});

  // 2. One (token, head) pair at a time, online softmax over the visible
  //    positions in chunks of 16 (no score buffer): the 16 scores of a chunk
  //    form one vector, so max, exp and sum are vector ops.
  Value heads = kb.idx(cfg.numHeads);
  auto [i0, i1] = kb.share(kb.mul(tokens, heads), tid, nth);
  int64_t group = cfg.numHeads / cfg.kvHeads;
  constexpr int64_t kChunk = kLanes;
  Value lastPosition = kb.idx(cfg.context - 1);
  Value lanesIota = arith::ConstantOp::create(
      b, DenseElementsAttr::get(
             VectorType::get({kChunk}, b.getIndexType()),
             llvm::to_vector(llvm::map_range(
                 llvm::seq<int64_t>(0, kChunk),
                 [&](int64_t i) -> Attribute { return b.getIndexAttr(i); }))));
  kb.forEach(i0, i1, [&](Value item) {
    Value t = kb.div(item, heads);
    Value h = kb.rem(item, heads);
    Value kvCol = kb.mul(kb.div(h, kb.idx(group)), kb.idx(cfg.headDim));
    Value qCol = kb.mul(h, kb.idx(cfg.headDim));
    SmallVector<Value> qv;
    for (int64_t c = 0; c < chunks; ++c)
      qv.push_back(kb.load(q, {t, kb.add(qCol, kb.idx(c * kLanes))}));
    Value last = kb.add(position, t); // inclusive, causal
    Value end = cfg.causal ? kb.add(last, kb.idx(1))
                           : kb.add(position, tokens);
    end = arith::MinUIOp::create(b, end, kb.idx(cfg.context));
    Value start = kb.idx(0);
    if (cfg.window > 0) {
      Value w = kb.idx(cfg.window);
      Value ge = arith::CmpIOp::create(b, arith::CmpIPredicate::uge, end, w);
      start = arith::SelectOp::create(b, ge, kb.sub(end, w), kb.idx(0));
    }
    SmallVector<Value> inits = {kb.f(-3.0e38f), kb.f(0.0f)};
    for (int64_t c = 0; c < chunks; ++c)
      inits.push_back(kb.zeros());
    auto scan = kb.loop(start, end, kb.idx(kChunk), inits,
                        [&](Value j0, ValueRange state) {
      // Positions past `end` (the last chunk's tail) get a score of -inf and
      // read a clamped, valid cache row.
      Value valid = arith::CmpIOp::create(
          b, arith::CmpIPredicate::ult,
          arith::AddIOp::create(b, vector::BroadcastOp::create(
                                       b, lanesIota.getType(), j0),
                                lanesIota),
          vector::BroadcastOp::create(b, lanesIota.getType(), end));
      SmallVector<Value> rows;
      Value scores = kb.splat(kb.f(0.0f));
      for (int64_t jj = 0; jj < kChunk; ++jj) {
        Value j = arith::MinUIOp::create(b, kb.add(j0, kb.idx(jj)), lastPosition);
        rows.push_back(j);
        Value kBase = kb.add(slot(0, j), kvCol);
        Value dot = kb.zeros();
        for (int64_t c = 0; c < chunks; ++c)
          dot = kb.fma(qv[c],
                       kb.load(cache, {kb.add(kBase, kb.idx(c * kLanes))}), dot);
        scores = vector::InsertOp::create(b, kb.sum(dot), scores,
                                          ArrayRef<int64_t>{jj});
      }
      scores = kb.mul(scores, kb.splat(kb.f(cfg.scale)));
      if (cfg.softcap > 0)
        scores = kb.mul(math::TanhOp::create(
                            b, kb.div(scores, kb.splat(kb.f(cfg.softcap)))),
                        kb.splat(kb.f(cfg.softcap)));
      scores = arith::SelectOp::create(b, valid, scores,
                                       kb.splat(kb.f(-3.0e38f)));
      Value chunkMax = vector::ReductionOp::create(
          b, vector::CombiningKind::MAXIMUMF, scores);
      Value m = kb.maxf(state[0], chunkMax);
      Value corr = kb.exp(kb.sub(state[0], m));
      Value p = arith::SelectOp::create(
          b, valid, kb.exp(kb.sub(scores, kb.splat(m))), kb.zeros());
      SmallVector<Value> out = {m, kb.add(kb.mul(state[1], corr), kb.sum(p))};
      Value corrV = kb.splat(corr);
      SmallVector<Value> acc;
      for (int64_t c = 0; c < chunks; ++c)
        acc.push_back(kb.mul(state[2 + c], corrV));
      for (int64_t jj = 0; jj < kChunk; ++jj) {
        Value pj = kb.splat(vector::ExtractOp::create(b, p, ArrayRef<int64_t>{jj}));
        Value vBase = kb.add(slot(1, rows[jj]), kvCol);
        for (int64_t c = 0; c < chunks; ++c)
          acc[c] = kb.fma(pj, kb.load(cache, {kb.add(vBase, kb.idx(c * kLanes))}),
                          acc[c]);
      }
      out.append(acc);
      return out;
    });
    Value inv = kb.splat(kb.div(kb.f(1.0f), scan.getResult(1)));
    for (int64_t c = 0; c < chunks; ++c)
      kb.store(kb.mul(scan.getResult(2 + c), inv), y,
               {t, kb.add(qCol, kb.idx(c * kLanes))});
  });
  return kernel.finish();
}

//===----------------------------------------------------------------------===//
// elementwise ops and softmax
//===----------------------------------------------------------------------===//

static Value emitSilu(KB &kb, Value x) {
  // x * sigmoid(x) = x / (1 + exp(-x))
  Value one = kb.splat(kb.f(1.0f));
  Value e = kb.exp(arith::NegFOp::create(kb.b, x));
  return kb.div(x, kb.add(one, e));
}

static Value emitGelu(KB &kb, Value x, bool tanhForm) {
  Value half = kb.splat(kb.f(0.5f));
  Value one = kb.splat(kb.f(1.0f));
  if (tanhForm) {
    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    Value x3 = kb.mul(kb.mul(x, x), x);
    Value inner = kb.mul(kb.splat(kb.f(0.7978845608f)),
                         kb.fma(kb.splat(kb.f(0.044715f)), x3, x));
    Value t = math::TanhOp::create(kb.b, inner);
    return kb.mul(kb.mul(half, x), kb.add(one, t));
  }
  Value e = math::ErfOp::create(kb.b, kb.mul(x, kb.splat(kb.f(0.70710678f))));
  return kb.mul(kb.mul(half, x), kb.add(one, e));
}

func::FuncOp KernelLibrary::elementwise(ElementwiseKind kind, int64_t dim,
                                        bool quantize) {
  bool binary = kind == ElementwiseKind::Add || kind == ElementwiseKind::Mul ||
                kind == ElementwiseKind::SwiGLU ||
                kind == ElementwiseKind::GeGLUTanh ||
                kind == ElementwiseKind::GeGLUErf;
  KernelSignature sig(module.getContext());
  sig.rows("a", dim);
  if (binary)
    sig.rows("b", dim);
  sig.rows("y", dim);
  if (quantize)
    sig.bytesAt("q");
  static const char *names[] = {"add",  "mul",       "swiglu",   "geglu_tanh",
                                "geglu_erf", "silu", "gelu_tanh", "gelu_erf",
                                "copy"};
  std::string name = ("kiln_" + Twine(names[int(kind)]) + "_" + Twine(dim) +
                      (quantize ? "_q8" : ""))
                         .str();
  KernelBuilder kernel(*this, name, sig);
  KB &kb = kernel.kb;
  Value a = kernel.arg("a"), bIn = kernel.optionalArg("b"),
        y = kernel.arg("y");
  Value q = kernel.optionalArg("q"), qOffset = kernel.optionalArg("qOffset");
  Value tid = kernel.tid(), nth = kernel.nth();
  // Work is split over chunks of the flattened [tokens, dim] array so a
  // single token's wide activation still uses every thread: 16 values, or
  // one 32-value block when the result is quantized for a linear layer too.
  int64_t width = quantize ? 32 : kLanes;
  int64_t perRow = dim / width;
  Value total = kb.mul(kb.dim(a, 0), kb.idx(perRow));
  auto [c0, c1] = kb.share(total, tid, nth);
  auto emitLanes = [&](Value t, Value col) {
    Value x = kb.load(a, {t, col});
    Value r;
    switch (kind) {
    case ElementwiseKind::Add:
      r = kb.add(x, kb.load(bIn, {t, col}));
      break;
    case ElementwiseKind::Mul:
      r = kb.mul(x, kb.load(bIn, {t, col}));
      break;
    case ElementwiseKind::SwiGLU:
      r = kb.mul(emitSilu(kb, x), kb.load(bIn, {t, col}));
      break;
    case ElementwiseKind::GeGLUTanh:
    case ElementwiseKind::GeGLUErf:
      r = kb.mul(emitGelu(kb, x, kind == ElementwiseKind::GeGLUTanh),
                 kb.load(bIn, {t, col}));
      break;
    case ElementwiseKind::Silu:
      r = emitSilu(kb, x);
      break;
    case ElementwiseKind::GeluTanh:
    case ElementwiseKind::GeluErf:
      r = emitGelu(kb, x, kind == ElementwiseKind::GeluTanh);
      break;
    case ElementwiseKind::Copy:
      r = x;
      break;
    }
    kb.store(r, y, {t, col});
  };
  kb.forEach(c0, c1, [&](Value c) {
    Value t = kb.div(c, kb.idx(perRow));
    Value col = kb.mul(kb.rem(c, kb.idx(perRow)), kb.idx(width));
    for (int64_t at = 0; at < width; at += kLanes)
      emitLanes(t, kb.add(col, kb.idx(at)));
    if (quantize)
      emitQuantizeBlock(kb, y, t, col, q,
                        kb.add(qOffset, kb.mul(c, kb.idx(kQ8RecordBytes))));
  });
  return kernel.finish();
}

func::FuncOp KernelLibrary::softmax(int64_t dim) {
  KernelSignature sig(module.getContext());
  sig.rows("x", dim).rows("y", dim);
  KernelBuilder kernel(*this, ("kiln_softmax_" + Twine(dim)).str(), sig);
  ImplicitLocOpBuilder &b = kernel.b;
  KB &kb = kernel.kb;
  Value x = kernel.arg("x"), y = kernel.arg("y"), tid = kernel.tid(),
        nth = kernel.nth();
  auto [t0, t1] = kb.share(kb.dim(x, 0), tid, nth);
  Value chunks = kb.idx(dim / kLanes);
  kb.forEach(t0, t1, [&](Value t) {
    auto col = [&](Value c) { return kb.mul(c, kb.idx(kLanes)); };
    auto mx = kb.loop(kb.idx(0), chunks, kb.idx(1), {kb.splat(kb.f(-3.0e38f))},
                      [&](Value c, ValueRange acc) {
                        return SmallVector<Value>{
                            kb.maxf(acc[0], kb.load(x, {t, col(c)}))};
                      });
    Value m = vector::ReductionOp::create(b, vector::CombiningKind::MAXIMUMF,
                                          mx.getResult(0));
    Value mV = kb.splat(m);
    auto s = kb.loop(kb.idx(0), chunks, kb.idx(1), {kb.zeros()},
                     [&](Value c, ValueRange acc) {
                       Value e = kb.exp(kb.sub(kb.load(x, {t, col(c)}), mV));
                       kb.store(e, y, {t, col(c)});
                       return SmallVector<Value>{kb.add(acc[0], e)};
                     });
    Value inv = kb.splat(kb.div(kb.f(1.0f), kb.sum(s.getResult(0))));
    kb.forEach(kb.idx(0), chunks, [&](Value c) {
      kb.store(kb.mul(kb.load(y, {t, col(c)}), inv), y, {t, col(c)});
    });
  });
  return kernel.finish();
}
