//===- CPUTarget.cpp - what differs between the CPU variants --------------===//

#include "CPUTarget.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::kiln;

std::string CPUTarget::getSymbolName() const {
  std::string name = stringify(isa).str();
  for (char &c : name)
    if (c == '-')
      c = '_';
  return name;
}

CPUTarget CPUTarget::forCodeBits(int64_t codeBits) const {
  return CPUTarget(isa, (int64_t(1) << codeBits) - 1);
}

/// Widens to i32, multiplies, and adds groups of four lanes with shuffles.
static Value emitWideningByteDot(ImplicitLocOpBuilder &b, Value acc, Value u,
                                 Value s) {
  auto i32x64 = VectorType::get({64}, b.getI32Type());
  Value prod = arith::MulIOp::create(b, arith::ExtUIOp::create(b, i32x64, u),
                                     arith::ExtSIOp::create(b, i32x64, s));
  Value sum = acc;
  for (int64_t j = 0; j < 4; ++j) {
    SmallVector<int64_t> lanes;
    for (int64_t i = 0; i < 16; ++i)
      lanes.push_back(4 * i + j);
    sum = arith::AddIOp::create(
        b, sum, vector::ShuffleOp::create(b, prod, prod, lanes));
  }
  return sum;
}

/// vpmaddubsw (pairs of u * s to i16) then vpmaddwd with ones (pairs of
/// those to i32), on each 32-byte half. Pair sums of up to `perSum` products
/// are added in i16 first (no overflow: maxCode * 127 * 2 * perSum <= 32767),
/// one vpmaddwd per such sum. `byteCodes`: u may exceed 128, and a pair sum
/// 16 bits: u's high and low nibbles are multiplied apart and their sums
/// weighted 16 and 1 by vpmaddwd.
static Value emitAVX2ByteDots(ImplicitLocOpBuilder &b, Value acc,
                              ArrayRef<Value> us, ArrayRef<Value> ss,
                              int64_t maxCode, bool byteCodes) {
  auto i16x16 = VectorType::get({16}, b.getI16Type());
  auto i32x8 = VectorType::get({8}, b.getI32Type());
  auto i8x64 = VectorType::get({64}, b.getI8Type());
  auto splat16 = [&](int64_t v) -> Value {
    return arith::ConstantOp::create(
        b, DenseElementsAttr::get(i16x16, b.getI16IntegerAttr(v)));
  };
  auto splat8 = [&](int64_t v) -> Value {
    return arith::ConstantOp::create(
        b, DenseElementsAttr::get(i8x64, b.getI8IntegerAttr(v)));
  };
  // (codes, activations, weight of their pair sums)
  struct Part {
    Value u, s;
    int64_t weight;
  };
  SmallVector<Part> parts;
  for (auto [u, s] : llvm::zip_equal(us, ss)) {
    if (!byteCodes) {
      parts.push_back({u, s, 1});
      continue;
    }
    parts.push_back({arith::AndIOp::create(b, u, splat8(15)), s, 1});
    parts.push_back({arith::ShRUIOp::create(b, u, splat8(4)), s, 16});
  }
  int64_t perSum =
      byteCodes ? 1 : std::max<int64_t>(1, 32767 / (2 * 127 * maxCode));
  SmallVector<Value> halves;
  for (int64_t h = 0; h < 2; ++h) {
    auto half = [&](Value v) {
      return vector::ExtractStridedSliceOp::create(
          b, v, ArrayRef<int64_t>{32 * h}, ArrayRef<int64_t>{32},
          ArrayRef<int64_t>{1});
    };
    Value sum;
    for (size_t first = 0; first < parts.size(); first += perSum) {
      Value pairs;
      size_t end = std::min(parts.size(), size_t(first + perSum));
      for (size_t i = first; i < end; ++i) {
        Value p = LLVM::CallIntrinsicOp::create(
                      b, i16x16, b.getStringAttr("llvm.x86.avx2.pmadd.ub.sw"),
                      ValueRange{half(parts[i].u), half(parts[i].s)})
                      .getResult(0);
        pairs = pairs ? Value(arith::AddIOp::create(b, pairs, p)) : p;
      }
      Value quads = LLVM::CallIntrinsicOp::create(
                        b, i32x8, b.getStringAttr("llvm.x86.avx2.pmadd.wd"),
                        ValueRange{pairs, splat16(parts[first].weight)})
                        .getResult(0);
      sum = sum ? Value(arith::AddIOp::create(b, sum, quads)) : quads;
    }
    halves.push_back(sum);
  }
  SmallVector<int64_t> order(16);
  for (int64_t i = 0; i < 16; ++i)
    order[i] = i;
  Value quads = vector::ShuffleOp::create(b, halves[0], halves[1], order);
  return arith::AddIOp::create(b, acc, quads);
}

Value CPUTarget::emitByteDots(ImplicitLocOpBuilder &b, Value acc,
                              ArrayRef<Value> us, ArrayRef<Value> ss) const {
  assert(us.size() == ss.size() && !us.empty() && "pairs of codes and bytes");
  if (isa == KernelISA::X86_64_V3)
    return emitAVX2ByteDots(b, acc, us, ss, maxCode, maxCode > 128);
  for (auto [u, s] : llvm::zip_equal(us, ss))
    acc = emitByteDot(b, acc, u, s);
  return acc;
}

Value CPUTarget::emitByteDot(ImplicitLocOpBuilder &b, Value acc, Value u,
                             Value s) const {
  switch (isa) {
  case KernelISA::Generic:
    return emitWideningByteDot(b, acc, u, s);
  case KernelISA::X86_64_V3:
    return emitAVX2ByteDots(b, acc, u, s, maxCode, maxCode > 128);
  case KernelISA::X86_64_V4:
    return LLVM::CallIntrinsicOp::create(
               b, VectorType::get({16}, b.getI32Type()),
               b.getStringAttr("llvm.x86.avx512.vpdpbusd.512"),
               ValueRange{acc, u, s})
        .getResult(0);
  }
  llvm_unreachable("covered switch over KernelISA");
}

Value CPUTarget::emitShuffleLanes16(ImplicitLocOpBuilder &b, Value table,
                                    Value indices) const {
  auto i8x64 = VectorType::get({64}, b.getI8Type());
  auto i8x32 = VectorType::get({32}, b.getI8Type());
  auto splat = [&](int64_t v) -> Value {
    return arith::ConstantOp::create(
        b, DenseElementsAttr::get(i8x64, b.getI8IntegerAttr(v)));
  };
  auto shuffle = [&](StringRef intrinsic, Type type, Value t, Value i) {
    return LLVM::CallIntrinsicOp::create(b, type, b.getStringAttr(intrinsic),
                                         ValueRange{t, i})
        .getResult(0);
  };
  switch (isa) {
  case KernelISA::X86_64_V4:
    return shuffle("llvm.x86.avx512.pshuf.b.512", i8x64, table, indices);
  case KernelISA::X86_64_V3: {
    SmallVector<Value> halves;
    for (int64_t h = 0; h < 2; ++h) {
      auto half = [&](Value v) {
        return vector::ExtractStridedSliceOp::create(
            b, v, ArrayRef<int64_t>{32 * h}, ArrayRef<int64_t>{32},
            ArrayRef<int64_t>{1});
      };
      halves.push_back(
          shuffle("llvm.x86.avx2.pshuf.b", i8x32, half(table), half(indices)));
    }
    SmallVector<int64_t> order(64);
    for (int64_t i = 0; i < 64; ++i)
      order[i] = i;
    return vector::ShuffleOp::create(b, halves[0], halves[1], order);
  }
  case KernelISA::Generic: {
    // Byte k of each lane in every byte of it, kept where the index (bits
    // 4-6 ignored, as vpshufb does) is k.
    Value wanted = arith::AndIOp::create(b, indices, splat(0x8f));
    Value picked = splat(0);
    for (int64_t k = 0; k < 16; ++k) {
      SmallVector<int64_t> lanes(64);
      for (int64_t i = 0; i < 64; ++i)
        lanes[i] = i / 16 * 16 + k;
      Value candidate = vector::ShuffleOp::create(b, table, table, lanes);
      Value isK =
          arith::CmpIOp::create(b, arith::CmpIPredicate::eq, wanted, splat(k));
      picked = arith::SelectOp::create(b, isK, candidate, picked);
    }
    return picked;
  }
  }
  llvm_unreachable("covered switch over KernelISA");
}

Value CPUTarget::emitPickBytes(ImplicitLocOpBuilder &b, Value table,
                               Value indices) const {
  auto i8x64 = VectorType::get({64}, b.getI8Type());
  switch (isa) {
  case KernelISA::X86_64_V4:
  case KernelISA::X86_64_V3:
    // Indices 0..7 into a table whose every 16-byte lane holds the word
    // twice.
    return emitShuffleLanes16(b, table, indices);
  case KernelISA::Generic: {
    // Byte k of each 8-byte word, in every byte of it; then pick by index.
    Value picked;
    for (int64_t k = 7; k >= 0; --k) {
      SmallVector<int64_t> lanes(64);
      for (int64_t i = 0; i < 64; ++i)
        lanes[i] = i / 8 * 8 + k;
      Value candidate = vector::ShuffleOp::create(b, table, table, lanes);
      if (!picked) {
        picked = candidate;
        continue;
      }
      Value isK = arith::CmpIOp::create(
          b, arith::CmpIPredicate::eq, indices,
          arith::ConstantOp::create(
              b, DenseElementsAttr::get(i8x64, b.getI8IntegerAttr(k))));
      picked = arith::SelectOp::create(b, isK, candidate, picked);
    }
    return picked;
  }
  }
  llvm_unreachable("covered switch over KernelISA");
}

Value CPUTarget::emitLookup16(ImplicitLocOpBuilder &b, ArrayRef<uint8_t> table,
                              Value indices) const {
  assert(table.size() == 16 && "a 16-entry table");
  auto i8x64 = VectorType::get({64}, b.getI8Type());
  auto bytes = [&](ArrayRef<uint8_t> v) -> Value {
    SmallVector<int8_t> s(v.begin(), v.end());
    return arith::ConstantOp::create(
        b, DenseElementsAttr::get(i8x64, ArrayRef<int8_t>(s)));
  };
  if (isa == KernelISA::Generic) {
    Value out = bytes(SmallVector<uint8_t>(64, table[0]));
    for (int64_t v = 1; v < 16; ++v) {
      Value isV = arith::CmpIOp::create(
          b, arith::CmpIPredicate::eq, indices,
          bytes(SmallVector<uint8_t>(64, uint8_t(v))));
      out = arith::SelectOp::create(
          b, isV, bytes(SmallVector<uint8_t>(64, table[v])), out);
    }
    return out;
  }
  // vpshufb looks up within each 16-byte lane: the table in every lane.
  SmallVector<uint8_t> lanes;
  for (int64_t l = 0; l < 4; ++l)
    lanes.append(table.begin(), table.end());
  return emitPickBytes(b, bytes(lanes), indices);
}
