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

KernelBuilder::KernelBuilder(KernelLibrary &library, StringRef name,
                             const KernelSignature &signature)
    : b(library.module.getLoc(), library.module.getContext()), library(library),
      names(signature.getNames()) {
  fn = library.start(name, signature.getType(), b);
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
