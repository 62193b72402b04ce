//===- GPUKernels.cpp - the kernel library and builder --------------------===//

#include "GPUKernels.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace mlir::kiln;

std::string mlir::kiln::floatKey(float value) {
  std::string text = llvm::formatv("{0}", llvm::format("%g", value)).str();
  std::string key;
  for (char c : text)
    if (c != '+')
      key += c == '.' ? 'p' : c == '-' ? 'm' : c;
  return key;
}

GPUKernelLibrary::GPUKernelLibrary(ModuleOp top) {
  MLIRContext *ctx = top.getContext();
  top->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
               UnitAttr::get(ctx));
  if (auto existing = top.lookupSymbol<gpu::GPUModuleOp>("kiln_kernels")) {
    module = existing;
    for (auto f : module.getOps<gpu::GPUFuncOp>()) {
      indexOf[f.getName()] = names.size();
      names.push_back(f.getName().str());
    }
    return;
  }
  OpBuilder b(ctx);
  b.setInsertionPointToEnd(top.getBody());
  module = gpu::GPUModuleOp::create(b, top.getLoc(), "kiln_kernels");
}

int64_t GPUKernelLibrary::get(const std::string &name,
                              ArrayRef<KernelArg> args,
                              llvm::function_ref<void(GPUKernelBuilder &)> build) {
  if (auto it = indexOf.find(name); it != indexOf.end())
    return it->second;
  MLIRContext *ctx = module.getContext();
  auto buffer = MemRefType::get({kDeviceBufferBytes}, IntegerType::get(ctx, 8));
  SmallVector<Type> types;
  for (const KernelArg &a : args)
    types.push_back(a.kind == KernelArgKind::Buffer ? Type(buffer)
                                                    : IndexType::get(ctx));
  OpBuilder b(ctx);
  b.setInsertionPointToEnd(module.getBody());
  auto func = gpu::GPUFuncOp::create(b, module.getLoc(), name,
                                     FunctionType::get(ctx, types, {}));
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), UnitAttr::get(ctx));
  GPUKernelBuilder kb(func, args);
  build(kb);
  gpu::ReturnOp::create(kb.b);
  int64_t index = names.size();
  indexOf[name] = index;
  names.push_back(name);
  return index;
}

GPUKernelBuilder::GPUKernelBuilder(gpu::GPUFuncOp func, ArrayRef<KernelArg> args)
    : b(func.getLoc(), func.getContext()), func(func) {
  b.setInsertionPointToStart(&func.getBody().front());
  for (auto [i, a] : llvm::enumerate(args))
    argIndex[a.name] = i;
}

Value GPUKernelBuilder::arg(StringRef name) {
  auto it = argIndex.find(name);
  assert(it != argIndex.end() && "kernel has no argument of this name");
  return func.getArgument(it->second);
}

static unsigned elementBytes(Type element) {
  if (auto v = dyn_cast<VectorType>(element))
    return v.getNumElements() * v.getElementTypeBitWidth() / 8;
  return element.getIntOrFloatBitWidth() / 8;
}

Value GPUKernelBuilder::view(Value bytes, Type element) {
  auto source = cast<MemRefType>(bytes.getType());
  auto type = MemRefType::get({source.getNumElements() / elementBytes(element)},
                              element, MemRefLayoutAttrInterface(),
                              source.getMemorySpace());
  return memref::ViewOp::create(b, type, bytes, idx(0), ValueRange{});
}

Value GPUKernelBuilder::sharedArray(int64_t count, Type element) {
  MLIRContext *ctx = b.getContext();
  auto space = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
  auto type = MemRefType::get({count}, element, MemRefLayoutAttrInterface(),
                              space);
  BlockArgument array = func.addWorkgroupAttribution(type, b.getLoc());
  // convert-gpu-to-nvvm aligns the array to its element type otherwise;
  // 128-bit accesses need 16 bytes.
  func.setWorkgroupAttributionAttr(func.getNumWorkgroupAttributions() - 1,
                                   "llvm.align", b.getI64IntegerAttr(16));
  return array;
}

Value GPUKernelBuilder::add(Value x, Value y) {
  if (isa<FloatType>(x.getType()))
    return arith::AddFOp::create(b, x, y);
  return arith::AddIOp::create(b, x, y);
}
Value GPUKernelBuilder::sub(Value x, Value y) {
  if (isa<FloatType>(x.getType()))
    return arith::SubFOp::create(b, x, y);
  return arith::SubIOp::create(b, x, y);
}
Value GPUKernelBuilder::mul(Value x, Value y) {
  if (isa<FloatType>(x.getType()))
    return arith::MulFOp::create(b, x, y);
  return arith::MulIOp::create(b, x, y);
}
Value GPUKernelBuilder::div(Value x, Value y) {
  if (isa<FloatType>(x.getType()))
    return arith::DivFOp::create(b, x, y);
  return arith::DivUIOp::create(b, x, y);
}

Value GPUKernelBuilder::toF32(Value i) {
  if (i.getType().isIndex())
    i = arith::IndexCastUIOp::create(b, b.getI64Type(), i);
  return arith::UIToFPOp::create(b, b.getF32Type(), i);
}

Value GPUKernelBuilder::fma(Value x, Value y, Value acc) {
  return LLVM::FMAOp::create(b, x, y, acc);
}

Value mlir::kiln::unaryPTX(OpBuilder &b, Location loc, StringRef op,
                           Value x) {
  return LLVM::InlineAsmOp::create(
             b, loc, b.getF32Type(), ValueRange{x},
             b.getStringAttr((op + " $0, $1;").str()), b.getStringAttr("=f,f"),
             /*has_side_effects=*/nullptr, /*is_align_stack=*/nullptr,
             LLVM::TailCallKindAttr::get(b.getContext(), LLVM::TailCallKind::None),
             /*asm_dialect=*/nullptr, /*operand_attrs=*/nullptr)
      .getResult(0);
}

// PTX's correctly rounded sqrt.rn.f32: math.sqrt would become a libdevice
// call and convert-gpu-to-nvvm rejects llvm.intr.sqrt.
Value GPUKernelBuilder::sqrt(Value x) {
  return unaryPTX(b, b.getLoc(), "sqrt.rn.f32", x);
}

// A polynomial after the pass's approximation patterns, not libdevice.
Value GPUKernelBuilder::exp(Value x) { return math::ExpOp::create(b, x); }

static Value laneGroupReduce(GPUKernelBuilder &kb, Value v, int64_t lanes,
                             bool max) {
  for (int64_t offset = lanes / 2; offset > 0; offset /= 2) {
    Value other = gpu::ShuffleOp::create(kb.b, v, kb.i32(offset),
                                         kb.i32(kWarpSize),
                                         gpu::ShuffleMode::XOR)
                      .getShuffleResult();
    v = max ? kb.maxf(v, other) : kb.add(v, other);
  }
  return v;
}

Value GPUKernelBuilder::laneGroupSum(Value v, int64_t lanes) {
  return laneGroupReduce(*this, v, lanes, false);
}
Value GPUKernelBuilder::laneGroupMax(Value v, int64_t lanes) {
  return laneGroupReduce(*this, v, lanes, true);
}

scf::ForOp GPUKernelBuilder::loop(
    Value lo, Value hi, Value step, ValueRange inits,
    llvm::function_ref<SmallVector<Value>(Value, ValueRange)> body) {
  return scf::ForOp::create(
      b, lo, hi, step, inits,
      [&](OpBuilder &nested, Location loc, Value i, ValueRange state) {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(nested.getInsertionBlock(),
                            nested.getInsertionPoint());
        SmallVector<Value> next = body(i, state);
        scf::YieldOp::create(b, next);
      });
}

void GPUKernelBuilder::forEach(Value lo, Value hi, Value step,
                               llvm::function_ref<void(Value)> body) {
  loop(lo, hi, step, {}, [&](Value i, ValueRange) {
    body(i);
    return SmallVector<Value>{};
  });
}

void GPUKernelBuilder::ifThen(Value cond, llvm::function_ref<void()> then) {
  auto op = scf::IfOp::create(b, cond, /*withElseRegion=*/false);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(op.thenBlock()->getTerminator());
  then();
}
