//===- KernelBuilder.cpp - how a CPU kernel is written --------------------===//

#include "KernelBuilder.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"

#include "llvm/Support/Format.h"

using namespace mlir;
using namespace mlir::kiln;

MemRefType mlir::kiln::getBytesType(MLIRContext *ctx) {
  return MemRefType::get({ShapedType::kDynamic}, IntegerType::get(ctx, 8));
}

std::string mlir::kiln::floatName(float v) {
  std::string text;
  llvm::raw_string_ostream(text) << llvm::format("%a", double(v));
  for (char &c : text)
    if (!isalnum(c))
      c = '_';
  return text;
}

//===----------------------------------------------------------------------===//
// KernelSignature
//===----------------------------------------------------------------------===//

KernelSignature &KernelSignature::arg(StringRef name, Type type) {
  assert(llvm::none_of(args, [&](auto &a) { return a.first == name; }) &&
         "kernel arguments have distinct names");
  args.emplace_back(name.str(), type);
  return *this;
}

KernelSignature &KernelSignature::rows(StringRef name, int64_t cols) {
  return arg(name, getRowsType(ctx, cols, Float32Type::get(ctx)));
}

KernelSignature &KernelSignature::ids(StringRef name) {
  return arg(name, getIdsType(ctx));
}

KernelSignature &KernelSignature::index(StringRef name) {
  return arg(name, IndexType::get(ctx));
}

KernelSignature &KernelSignature::bytes(StringRef name) {
  return arg(name, getBytesType(ctx));
}

KernelSignature &KernelSignature::bytesAt(StringRef name) {
  return bytes(name).index((name + "Offset").str());
}

KernelSignature &KernelSignature::weightAndBias(bool hasBias) {
  bytesAt("w");
  if (hasBias)
    bytesAt("bias");
  return *this;
}

KernelSignature &KernelSignature::pointer(StringRef name) {
  return arg(name, LLVM::LLVMPointerType::get(ctx));
}

KernelSignature &KernelSignature::withoutThreads() {
  threads = false;
  return *this;
}

FunctionType KernelSignature::getType() const {
  SmallVector<Type> types;
  for (auto &[name, type] : args)
    types.push_back(type);
  if (threads)
    types.append(2, IndexType::get(ctx));
  return FunctionType::get(ctx, types, {});
}

SmallVector<std::string> KernelSignature::getNames() const {
  SmallVector<std::string> names;
  for (auto &[name, type] : args)
    names.push_back(name);
  if (threads)
    names.append({"tid", "nth"});
  return names;
}

//===----------------------------------------------------------------------===//
// KernelBuilder
//===----------------------------------------------------------------------===//

KernelBuilder::KernelBuilder(KernelLibrary &library,
                             const KernelSignature &signature,
                             const Twine &name)
    : detail::KernelBodyBuilder{ImplicitLocOpBuilder(
          library.module.getLoc(), library.module.getContext())},
      KB{builder}, library(library), names(signature.getNames()) {
  fn = library.start(name.str(), signature.getType(), b);
  args = fn.getArguments();
}

Value KernelBuilder::optionalArg(StringRef name) const {
  const auto *it = llvm::find(names, name);
  if (it == names.end())
    return Value();
  return args[it - names.begin()];
}

Value KernelBuilder::arg(StringRef name) const {
  Value v = optionalArg(name);
  assert(v && "the kernel's signature declares this argument");
  return v;
}

func::FuncOp KernelBuilder::finish() {
  func::ReturnOp::create(b);
  return library.finish(fn);
}

//===----------------------------------------------------------------------===//
// int8 activation records
//===----------------------------------------------------------------------===//

/// f32 -> f16 -> f32: the precision ggml stores block scales in.
static Value roundToF16(ImplicitLocOpBuilder &b, Value v) {
  Value h = arith::TruncFOp::create(b, b.getF16Type(), v);
  return arith::ExtFOp::create(b, b.getF32Type(), h);
}

void mlir::kiln::storeF32(ImplicitLocOpBuilder &b, Value v, Value bytes,
                          Value offset) {
  Value vec =
      vector::BroadcastOp::create(b, VectorType::get({1}, b.getF32Type()), v);
  Value raw =
      vector::BitCastOp::create(b, VectorType::get({4}, b.getI8Type()), vec);
  vector::StoreOp::create(b, raw, bytes, ValueRange{offset});
}

void mlir::kiln::storeI32(ImplicitLocOpBuilder &b, Value v, Value bytes,
                          Value offset) {
  Value vec =
      vector::BroadcastOp::create(b, VectorType::get({1}, b.getI32Type()), v);
  Value raw =
      vector::BitCastOp::create(b, VectorType::get({4}, b.getI8Type()), vec);
  vector::StoreOp::create(b, raw, bytes, ValueRange{offset});
}

Value mlir::kiln::loadF32(ImplicitLocOpBuilder &b, Value bytes, Value offset) {
  Value raw = vector::LoadOp::create(b, VectorType::get({4}, b.getI8Type()),
                                     bytes, ValueRange{offset});
  Value vec =
      vector::BitCastOp::create(b, VectorType::get({1}, b.getF32Type()), raw);
  return vector::ExtractOp::create(b, vec, ArrayRef<int64_t>{0});
}

void mlir::kiln::emitQuantizeBlock(KB &kb, Value x, Value t, Value col, Value q,
                                   Value rec, int64_t bits) {
  // Symmetric codes in [-maxCode, maxCode]: at 8 bits ggml's q8_1 (127).
  const float maxCode = float((int64_t(1) << (bits - 1)) - 1);
  ImplicitLocOpBuilder &b = kb.b;
  auto i32x16 = VectorType::get({kLanes}, b.getI32Type());
  auto i8x16 = VectorType::get({kLanes}, b.getI8Type());
  Value v0 = kb.load(x, {t, col});
  Value v1 = kb.load(x, {t, kb.add(col, kb.idx(16))});
  Value amaxV =
      kb.maxf(math::AbsFOp::create(b, v0), math::AbsFOp::create(b, v1));
  Value amax =
      vector::ReductionOp::create(b, vector::CombiningKind::MAXIMUMF, amaxV);
  Value d = kb.div(amax, kb.f(maxCode));
  Value nonzero =
      arith::CmpFOp::create(b, arith::CmpFPredicate::ONE, amax, kb.f(0.0f));
  Value inv = arith::SelectOp::create(b, nonzero, kb.div(kb.f(maxCode), amax),
                                      kb.f(0.0f));
  Value invV = kb.splat(inv);
  // x * (maxCode / amax) may round past maxCode by an ulp: clamp the codes.
  Value hi = kb.splat(kb.f(maxCode)), lo = kb.splat(kb.f(-maxCode));
  auto code = [&](Value v) -> Value {
    Value r = math::RoundEvenOp::create(b, kb.mul(v, invV));
    r = arith::MinimumFOp::create(b, arith::MaximumFOp::create(b, r, lo), hi);
    return arith::FPToSIOp::create(b, i32x16, r);
  };
  Value q0 = code(v0), q1 = code(v1);
  Value sumLo = vector::ReductionOp::create(b, vector::CombiningKind::ADD, q0);
  Value sumHi = vector::ReductionOp::create(b, vector::CombiningKind::ADD, q1);
  Value sum = arith::AddIOp::create(b, sumLo, sumHi);
  SmallVector<int64_t> order(32);
  for (int64_t i = 0; i < 32; ++i)
    order[i] = i;
  Value codes =
      vector::ShuffleOp::create(b, arith::TruncIOp::create(b, i8x16, q0),
                                arith::TruncIOp::create(b, i8x16, q1), order);
  vector::StoreOp::create(b, codes, q, ValueRange{rec});
  Value sumF = arith::SIToFPOp::create(b, kb.f32(), sum);
  storeF32(b, roundToF16(b, d), q, kb.add(rec, kb.idx(32)));
  storeF32(b, roundToF16(b, kb.mul(d, sumF)), q, kb.add(rec, kb.idx(36)));
  storeI32(b, sumLo, q, kb.add(rec, kb.idx(40)));
  storeI32(b, sumHi, q, kb.add(rec, kb.idx(44)));
}

/// One `width`-bit integer at byte `offset` of a byte buffer.
static Value loadInteger(ImplicitLocOpBuilder &b, Value bytes, Value offset,
                         unsigned width) {
  Value raw = vector::LoadOp::create(
      b, VectorType::get({width / 8}, b.getI8Type()), bytes, ValueRange{offset});
  Value vec = vector::BitCastOp::create(
      b, VectorType::get({1}, b.getIntegerType(width)), raw);
  return vector::ExtractOp::create(b, vec, ArrayRef<int64_t>{0});
}

Value mlir::kiln::loadI32(ImplicitLocOpBuilder &b, Value bytes, Value offset) {
  return loadInteger(b, bytes, offset, 32);
}

Value mlir::kiln::loadI64(ImplicitLocOpBuilder &b, Value bytes, Value offset) {
  return loadInteger(b, bytes, offset, 64);
}

Value mlir::kiln::emitByteField(ImplicitLocOpBuilder &b, Value bytes,
                                int64_t shift, int64_t mask) {
  auto splat = [&](int64_t v) -> Value {
    return arith::ConstantOp::create(
        b, DenseElementsAttr::get(cast<VectorType>(bytes.getType()),
                                  b.getI8IntegerAttr(int8_t(v))));
  };
  Value shifted =
      shift ? Value(arith::ShRUIOp::create(b, bytes, splat(shift))) : bytes;
  if (((0xFF >> shift) & ~mask) == 0)
    return shifted;
  return arith::AndIOp::create(b, shifted, splat(mask));
}
