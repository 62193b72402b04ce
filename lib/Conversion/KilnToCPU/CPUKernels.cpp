//===- CPUKernels.cpp - kernel functions the CPU lowering calls -----------===//

#include "KernelBuilder.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"

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
  KernelBuilder kb(*this, sig, "kiln_barrier");
  ImplicitLocOpBuilder &b = kb.b;
  Value rt = kb.arg("rt");
  // KilnRtContext's first field is `void (*barrier)(KilnRtContext *)`.
  Value callee = LLVM::LoadOp::create(b, ptr, rt);
  auto fnType = LLVM::LLVMFunctionType::get(LLVM::LLVMVoidType::get(ctx), {ptr});
  LLVM::CallOp::create(b, fnType, ValueRange{callee, rt});
  return kb.finish();
}
