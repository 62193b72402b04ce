//===- KilnCAPI.cpp - the C API of include/kiln-c/Kiln.h ------------------===//
//
// The compiler side of the stable C API. Loading and running artifacts is the
// runtime's own C API (kiln/runtime/Runtime.h), which this library re-exports
// by linking libkiln_runtime.so; nothing here duplicates it.
//
// kiln_compile_mlir lowers a module with the same pipeline as kiln-compile,
// adds one packed entry point per function (`_kiln_packed_<name>(void
// **args)`, the convention of MLIR's ExecutionEngine), so that functions of
// any signature are called without a foreign-function library, and loads the
// shared object from an in-memory file.
//
//===----------------------------------------------------------------------===//

#include "kiln-c/Kiln.h"
#include "kiln/runtime/HostExecution.h"

#include "Compiler/Compiler.h"
#include "Compiler/CompilerContext.h"
#include "Compiler/HostCodegen.h"
#include "Compiler/NestingLimit.h"
#include "Kiln/IR/KilnDialect.h"
#include "Kiln/IR/WeightStore.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/TargetParser/Host.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

using namespace mlir;

namespace {

/// Messages handed out by the API: one per thread, valid until the next
/// failing call on the same thread.
thread_local std::string lastError;

int fail(const char **err, std::string message) {
  lastError = std::move(message);
  if (err)
    *err = lastError.c_str();
  return KILN_ERROR;
}

bool parseInt(llvm::StringRef text, int64_t min, int64_t &value) {
  return !text.getAsInteger(10, value) && value >= min;
}

/// An argument of a compiled function as the caller sees it.
struct ArgInfo {
  std::string name;
  kiln_arg_kind kind;
  kiln_dtype dtype = KILN_DTYPE_U8;
  unsigned scalarBits = 64; // KILN_ARG_INTEGER: 64 for index
  std::vector<int64_t> shape;
};

struct FunctionInfo {
  std::string name;
  std::vector<ArgInfo> args;
  int64_t maxTokens = 0;
  int64_t scratchBytes = 0;
  using PackedFn = void (*)(void **);
  PackedFn packed = nullptr;
};

std::optional<kiln_dtype> dtypeOf(Type t) {
  if (t.isF32())
    return KILN_DTYPE_F32;
  if (t.isF16())
    return KILN_DTYPE_F16;
  if (t.isBF16())
    return KILN_DTYPE_BF16;
  if (t.isF64())
    return KILN_DTYPE_F64;
  if (t.isSignlessInteger(8))
    return KILN_DTYPE_I8;
  if (t.isSignlessInteger(16))
    return KILN_DTYPE_I16;
  if (t.isSignlessInteger(32))
    return KILN_DTYPE_I32;
  if (t.isSignlessInteger(64))
    return KILN_DTYPE_I64;
  return std::nullopt;
}

size_t dtypeBytes(int32_t dtype) {
  switch (dtype) {
  case KILN_DTYPE_F64:
  case KILN_DTYPE_I64:
    return 8;
  case KILN_DTYPE_F32:
  case KILN_DTYPE_I32:
    return 4;
  case KILN_DTYPE_F16:
  case KILN_DTYPE_BF16:
  case KILN_DTYPE_I16:
    return 2;
  default:
    return 1;
  }
}

const char *dtypeName(int32_t dtype) {
  static const char *names[] = {"f32", "f16", "bf16", "f64", "i8",
                                "i16", "i32", "i64",  "u8"};
  return dtype >= 0 && dtype <= KILN_DTYPE_U8 ? names[dtype] : "unknown";
}

/// The text of the SSA name at `loc` in `source` ("x" for `%x`), or "".
std::string ssaNameAt(Location loc, llvm::StringRef source) {
  auto fileLoc = dyn_cast<FileLineColLoc>(loc);
  if (!fileLoc || fileLoc.getLine() == 0)
    return "";
  size_t pos = 0;
  for (unsigned line = 1; line < fileLoc.getLine(); ++line) {
    pos = source.find('\n', pos);
    if (pos == llvm::StringRef::npos)
      return "";
    ++pos;
  }
  pos += fileLoc.getColumn() - 1;
  if (pos >= source.size() || source[pos] != '%')
    return "";
  size_t end = pos + 1;
  while (end < source.size() && (llvm::isAlnum(source[end]) ||
                                 llvm::StringRef("_$.-").contains(source[end])))
    ++end;
  return source.slice(pos + 1, end).str();
}

/// The caller's view of `f` before lowering: its arguments, then a buffer
/// per result not tied to an argument (convert-kiln-to-cpu's signature).
llvm::Expected<FunctionInfo> describeFunction(func::FuncOp f,
                                              llvm::StringRef source,
                                              int64_t maxTokensOption) {
  FunctionInfo info;
  info.name = f.getName().str();
  auto error = [&](const llvm::Twine &msg) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "@" + info.name + ": " + msg);
  };
  FunctionType type = f.getFunctionType();
  for (auto [i, t] : llvm::enumerate(type.getInputs())) {
    ArgInfo arg;
    arg.name = ssaNameAt(f.getArgument(i).getLoc(), source);
    if (arg.name.empty())
      arg.name = "arg" + std::to_string(i);
    if (auto tensor = dyn_cast<RankedTensorType>(t)) {
      auto dtype = dtypeOf(tensor.getElementType());
      if (!dtype)
        return error("argument " + llvm::Twine(i) +
                     " has an unsupported "
                     "element type");
      arg.kind = KILN_ARG_TENSOR;
      arg.dtype = *dtype;
      arg.shape.assign(tensor.getShape().begin(), tensor.getShape().end());
    } else if (isa<mlir::kiln::KVCacheType>(t)) {
      arg.kind = KILN_ARG_BYTES;
      arg.dtype = KILN_DTYPE_I8;
      arg.shape = {-1};
    } else if (t.isIndex() || t.isSignlessInteger(64) ||
               t.isSignlessInteger(32)) {
      arg.kind = KILN_ARG_INTEGER;
      arg.scalarBits = t.isIndex() ? 64 : t.getIntOrFloatBitWidth();
    } else {
      return error("argument " + llvm::Twine(i) +
                   " is neither a ranked tensor, a KV cache nor an integer");
    }
    info.args.push_back(std::move(arg));
  }
  auto tied = f->getAttrOfType<ArrayAttr>("kiln.tied_results");
  for (auto [i, t] : llvm::enumerate(type.getResults())) {
    auto tiedTo = tied && i < tied.size() ? dyn_cast<IntegerAttr>(tied[i])
                                          : IntegerAttr();
    if (tiedTo && tiedTo.getInt() >= 0)
      continue;
    auto tensor = dyn_cast<RankedTensorType>(t);
    auto dtype = tensor ? dtypeOf(tensor.getElementType()) : std::nullopt;
    if (!dtype)
      return error("result " + llvm::Twine(i) +
                   " is not a ranked tensor of a supported element type");
    ArgInfo arg;
    arg.name = "result" + std::to_string(i);
    arg.kind = KILN_ARG_RESULT;
    arg.dtype = *dtype;
    arg.shape.assign(tensor.getShape().begin(), tensor.getShape().end());
    info.args.push_back(std::move(arg));
  }
  info.maxTokens = maxTokensOption;
  if (!info.maxTokens)
    if (auto attr = f->getAttrOfType<IntegerAttr>("kiln.max_tokens"))
      info.maxTokens = attr.getInt();
  return info;
}

/// Adds `_kiln_packed_<name>(ptr args)`: loads argument i from the pointer
/// in args[i] and calls `_mlir_ciface_<name>`.
void addPackedEntry(ModuleOp module, LLVM::LLVMFuncOp ciface,
                    llvm::StringRef name) {
  MLIRContext *ctx = module.getContext();
  Location loc = ciface.getLoc();
  OpBuilder b(ctx);
  b.setInsertionPointToEnd(module.getBody());
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  auto type = LLVM::LLVMFunctionType::get(LLVM::LLVMVoidType::get(ctx), {ptr});
  auto packed =
      LLVM::LLVMFuncOp::create(b, loc, ("_kiln_packed_" + name).str(), type);
  Block *entry = packed.addEntryBlock(b);
  b.setInsertionPointToStart(entry);
  SmallVector<Value> args;
  for (auto [i, t] : llvm::enumerate(ciface.getArgumentTypes())) {
    Value slot = LLVM::GEPOp::create(b, loc, ptr, ptr, entry->getArgument(0),
                                     ArrayRef<LLVM::GEPArg>{int32_t(i)});
    Value argPtr = LLVM::LoadOp::create(b, loc, ptr, slot);
    args.push_back(LLVM::LoadOp::create(b, loc, t, argPtr));
  }
  LLVM::CallOp::create(b, loc, ciface, args);
  LLVM::ReturnOp::create(b, loc, ValueRange{});
}

/// The first CPU variant whose features this machine has.
const ::kiln::CpuTarget *hostCpuTarget() {
  llvm::StringMap<bool> features = llvm::sys::getHostCPUFeatures();
  for (const ::kiln::CpuTarget &target : ::kiln::getCpuTargets())
    if (llvm::all_of(target.runtimeFeatures,
                     [&](const std::string &f) { return features.lookup(f); }))
      return &target;
  return nullptr;
}

} // namespace

struct kiln_compile_options {
  ::kiln::CompileOptions options;
};

struct kiln_mlir_module {
  std::vector<FunctionInfo> functions;
  uint64_t weightBytes = 0; // bytes the #kiln.external ranges need
  kiln_host_code *code = nullptr;
  kiln_thread_pool *pool = nullptr;
  void *scratch = nullptr;
  size_t scratchSize = 0;
  /// The weights packed at compile time (kiln_compile_mlir_weights).
  void *weights = nullptr;
  bool holdsWeights = false;

  ~kiln_mlir_module() {
    kiln_thread_pool_free(pool);
    kiln_host_code_free(code);
    std::free(scratch);
    std::free(weights);
  }
};

extern "C" {

int32_t kiln_capi_version(void) { return KILN_C_API_VERSION; }

int kiln_compile_options_create(kiln_compile_options **options,
                                const char **err) {
  if (!options)
    return fail(err, "kiln_compile_options_create: options must not be NULL");
  *options = new kiln_compile_options();
  (*options)->options.progress = nullptr;
  return KILN_OK;
}

void kiln_compile_options_free(kiln_compile_options *options) {
  delete options;
}

int kiln_compile_options_set(kiln_compile_options *options, const char *key,
                             const char *value, const char **err) {
  if (!options || !key || !value)
    return fail(err, "kiln_compile_options_set: options, key and value must "
                     "not be NULL");
  ::kiln::CompileOptions &o = options->options;
  llvm::StringRef k(key), v(value);
  auto bad = [&](llvm::StringRef expected) {
    return fail(
        err, ("option " + k + "='" + v + "' is invalid: expected " + expected)
                 .str());
  };
  if (k == "target") {
    if (v != "cpu")
      return bad("cpu");
    o.target = v.str();
  } else if (k == "activations") {
    auto precision = mlir::kiln::parseActivationPrecision(v);
    if (!precision)
      return bad("int2..int8 or f32");
    o.activations = *precision;
  } else if (k == "ctx") {
    if (!parseInt(v, 0, o.contextLength))
      return bad("an integer >= 0");
  } else if (k == "max_tokens") {
    if (!parseInt(v, 1, o.maxTokens))
      return bad("an integer >= 1");
  } else if (k == "emit") {
    if (!::kiln::parseEmitKind(v, o.emit))
      return bad("one of kiln, mlir, llvm-mlir, llvm, asm, so, gguf");
  } else if (k == "cpu") {
    if (!::kiln::lookupCpuTarget(v))
      return bad("a CPU variant such as x86-64-v4 or x86-64-v3");
    o.cpuVariant = v.str();
  } else if (k == "quantize") {
    llvm::Expected<::kiln::QuantizeOptions> quantize =
        ::kiln::parseQuantizeOptions(v);
    if (!quantize)
      return fail(err, llvm::toString(quantize.takeError()));
    o.quantize = *quantize;
  } else if (k == "prune") {
    llvm::Expected<::kiln::PruneOptions> prune = ::kiln::parsePruneOptions(v);
    if (!prune)
      return fail(err, llvm::toString(prune.takeError()));
    o.prune = *prune;
  } else {
    return fail(err, ("unknown compile option '" + k +
                      "' (known: target, activations, ctx, max_tokens, emit, "
                      "cpu, quantize, prune)")
                         .str());
  }
  return KILN_OK;
}

int kiln_compile(const char *input, const char *output,
                 const kiln_compile_options *options,
                 kiln_progress_callback progress, void *user,
                 const char **err) {
  if (!input || !output)
    return fail(err, "kiln_compile: input and output must not be NULL");
  ::kiln::CompileOptions o =
      options ? options->options : ::kiln::CompileOptions();
  o.input = input;
  o.output = output;
  if (progress)
    o.progress = [&](const std::string &stage, double fraction) {
      progress(stage.c_str(), fraction, user);
    };
  if (::access(input, R_OK) != 0)
    return fail(err, std::string(input) + ": " + std::strerror(errno));
  if (llvm::Error e = ::kiln::compile(o))
    return fail(err, llvm::toString(std::move(e)));
  return KILN_OK;
}

int kiln_compile_mlir(const char *text, size_t size, const char *pipeline,
                      kiln_mlir_module **result, const char **err) {
  return kiln_compile_mlir_weights(text, size, pipeline, nullptr, 0, result,
                                   err);
}

int kiln_compile_mlir_weights(const char *text, size_t size,
                              const char *pipeline, const void *weights,
                              size_t weights_size, kiln_mlir_module **result,
                              const char **err) {
  if (!text || !result)
    return fail(err, "kiln_compile_mlir: text and module must not be NULL");
  *result = nullptr;

  // The options of kiln-compile's .mlir route; the CPU variant defaults to
  // the best this machine runs.
  ::kiln::CompileOptions options;
  options.cpuVariant.clear();
  if (llvm::Error e = ::kiln::parseMLIRPipelineOptions(
          pipeline ? pipeline : "", options))
    return fail(err, llvm::toString(std::move(e)));
  const ::kiln::CpuTarget *target = nullptr;
  if (options.cpuVariant.empty()) {
    if (!(target = hostCpuTarget()))
      return fail(err, "this CPU runs none of Kiln's CPU variants (x86-64-v3 "
                       "needs AVX2, FMA and F16C)");
    options.cpuVariant = target->name;
  } else if (!(target = ::kiln::lookupCpuTarget(options.cpuVariant))) {
    return fail(err, "unknown CPU variant '" + options.cpuVariant + "'");
  }
  options.input = "input.mlir";

  llvm::StringRef source(text, size);
  if (llvm::Error e = ::kiln::checkNestingDepth(
          llvm::MemoryBufferRef(source, "input.mlir")))
    return fail(err, llvm::toString(std::move(e)));

  MLIRContext ctx(MLIRContext::Threading::DISABLED);
  ::kiln::registerCompilerDialects(ctx);
  ::kiln::FirstError diags(ctx, ::kiln::FirstError::LocationStyle::FileLineCol);
  OwningOpRef<ModuleOp> module =
      parseSourceString<ModuleOp>(source, ParserConfig(&ctx), "input.mlir");
  if (!module)
    return fail(err, diags.take("input.mlir: cannot parse the module"));

  auto m = std::make_unique<kiln_mlir_module>();
  // Functions that use no kiln op are not step functions: leave them out.
  for (auto f : module->getOps<func::FuncOp>()) {
    if (!mlir::kiln::KilnDialect::isStepFunction(f))
      continue;
    llvm::Expected<FunctionInfo> info =
        describeFunction(f, source, options.mlirMaxTokens);
    if (!info)
      return fail(err, llvm::toString(info.takeError()));
    m->functions.push_back(std::move(*info));
  }
  if (m->functions.empty())
    return fail(err, "the module has no function that uses kiln ops");
  // `weights` are the bytes of the file the module's ranges name: the
  // weight store reads them in its place.
  mlir::kiln::WeightStore &store = mlir::kiln::WeightStore::get(&ctx);
  module->walk([&](mlir::kiln::WeightOp op) {
    auto ext = dyn_cast<mlir::kiln::ExternalDataAttr>(op.getSource());
    if (!ext)
      return;
    m->weightBytes =
        std::max<uint64_t>(m->weightBytes, ext.getOffset() + ext.getSize());
    if (weights)
      store.provideFile(ext.getPath(),
                        llvm::ArrayRef<char>(static_cast<const char *>(weights),
                                             weights_size));
  });

  llvm::Expected<::kiln::LoweredMLIR> lowered =
      ::kiln::lowerMLIRModule(*module, options, weights != nullptr);
  if (!lowered)
    return fail(err, llvm::toString(lowered.takeError()));
  if (lowered->weights) {
    // Kept 64-byte aligned, as the runtime maps an artifact's weights.
    m->weightBytes = lowered->weights->size();
    m->weights = std::aligned_alloc(
        64, llvm::alignTo(std::max<size_t>(m->weightBytes, 64), 64));
    if (!m->weights)
      return fail(err, "cannot allocate " + std::to_string(m->weightBytes) +
                           " bytes for the packed weights");
    std::memcpy(m->weights, lowered->weights->data(), m->weightBytes);
    m->holdsWeights = true;
  }

  for (FunctionInfo &info : m->functions) {
    auto f = module->lookupSymbol<LLVM::LLVMFuncOp>(info.name);
    auto scratch =
        f ? f->getAttrOfType<IntegerAttr>("kiln.scratch_bytes") : IntegerAttr();
    auto ciface =
        module->lookupSymbol<LLVM::LLVMFuncOp>("_mlir_ciface_" + info.name);
    if (!scratch || !ciface || ciface.getNumArguments() != info.args.size() + 5)
      return fail(err, "@" + info.name +
                           ": the lowered function has an unexpected "
                           "signature (a compiler bug)");
    info.scratchBytes = scratch.getInt();
    addPackedEntry(*module, ciface, info.name);
  }

  llvm::Expected<std::string> so = ::kiln::emitSharedObject(*module, *target);
  if (!so)
    return fail(err, llvm::toString(so.takeError()));

  // Load from an in-memory file, as the runtime loads host code.
  const char *why = nullptr;
  if (kiln_host_code_load(so->data(), so->size(), "mlir-module", &m->code,
                          &why) != KILN_OK)
    return fail(err, why);
  for (FunctionInfo &info : m->functions) {
    void *sym =
        kiln_host_code_symbol(m->code, ("_kiln_packed_" + info.name).c_str());
    if (!sym)
      return fail(err, "@" + info.name +
                           ": no packed entry point (a "
                           "compiler bug)");
    info.packed = reinterpret_cast<FunctionInfo::PackedFn>(sym);
  }
  *result = m.release();
  return KILN_OK;
}

void kiln_mlir_module_free(kiln_mlir_module *module) { delete module; }

int32_t kiln_mlir_module_num_functions(const kiln_mlir_module *module) {
  return module ? int32_t(module->functions.size()) : 0;
}

const char *kiln_mlir_module_function_name(const kiln_mlir_module *module,
                                           int32_t index) {
  if (!module || index < 0 || size_t(index) >= module->functions.size())
    return nullptr;
  return module->functions[index].name.c_str();
}

int kiln_mlir_module_lookup(const kiln_mlir_module *module, const char *name,
                            int32_t *index, const char **err) {
  if (!module || !name || !index)
    return fail(err, "kiln_mlir_module_lookup: module, name and index must "
                     "not be NULL");
  for (auto [i, f] : llvm::enumerate(module->functions))
    if (f.name == name) {
      *index = int32_t(i);
      return KILN_OK;
    }
  *index = -1;
  std::string known;
  for (const FunctionInfo &f : module->functions)
    known += (known.empty() ? "@" : ", @") + f.name;
  return fail(err, "no function @" + std::string(name) +
                       " in the module (it has " + known + ")");
}

static const FunctionInfo *functionAt(const kiln_mlir_module *module,
                                      int32_t function) {
  if (!module || function < 0 || size_t(function) >= module->functions.size())
    return nullptr;
  return &module->functions[function];
}

int32_t kiln_function_num_args(const kiln_mlir_module *module,
                               int32_t function) {
  const FunctionInfo *f = functionAt(module, function);
  return f ? int32_t(f->args.size()) : -1;
}

int kiln_function_arg(const kiln_mlir_module *module, int32_t function,
                      int32_t arg, kiln_arg_info *info, const char **err) {
  const FunctionInfo *f = functionAt(module, function);
  if (!f || !info || arg < 0 || size_t(arg) >= f->args.size())
    return fail(err, "kiln_function_arg: no such function or argument");
  const ArgInfo &a = f->args[arg];
  info->name = a.name.c_str();
  info->kind = a.kind;
  info->dtype = a.dtype;
  info->rank = int32_t(a.shape.size());
  info->shape = a.shape.data();
  return KILN_OK;
}

int64_t kiln_function_max_tokens(const kiln_mlir_module *module,
                                 int32_t function) {
  const FunctionInfo *f = functionAt(module, function);
  return f ? f->maxTokens : -1;
}

int64_t kiln_function_scratch_bytes(const kiln_mlir_module *module,
                                    int32_t function) {
  const FunctionInfo *f = functionAt(module, function);
  return f ? f->scratchBytes : -1;
}

int kiln_function_call(kiln_mlir_module *module, int32_t function,
                       const kiln_buffer *args, size_t n_args,
                       const void *weights, size_t weights_size,
                       int32_t n_threads, const char **err) {
  const FunctionInfo *f = functionAt(module, function);
  if (!f)
    return fail(err, "kiln_function_call: no such function");
  std::string where = "@" + f->name + ": ";
  if (n_args != f->args.size() || (n_args && !args))
    return fail(err, where + "expected " + std::to_string(f->args.size()) +
                         " arguments, got " + std::to_string(n_args));
  if (n_threads < 1 || n_threads > KILN_THREAD_POOL_MAX_THREADS)
    return fail(err, where + "the thread count must be between 1 and 1024");
  if (module->holdsWeights && weights)
    return fail(err, where + "the module holds its weights, packed when it "
                             "was compiled; pass no weights to the call");
  if (module->holdsWeights) {
    weights = module->weights;
    weights_size = module->weightBytes;
  }
  if (weights_size < module->weightBytes)
    return fail(err, where + "the weights buffer has " +
                         std::to_string(weights_size) +
                         " bytes; the module's #kiln.external ranges need " +
                         std::to_string(module->weightBytes));

  // Check every buffer against the signature and build its descriptor
  // {allocated, aligned, offset, sizes..., strides...}.
  int64_t tokens = -1;
  std::vector<std::vector<int64_t>> descriptors(n_args);
  std::vector<int64_t> scalars(n_args);
  std::vector<int32_t> scalars32(n_args);
  std::vector<void *> values(n_args);
  std::vector<std::pair<const char *, const char *>> extents(n_args);
  for (size_t i = 0; i < n_args; ++i) {
    const ArgInfo &a = f->args[i];
    const kiln_buffer &buf = args[i];
    std::string what = where + "argument '" + a.name + "'";
    if (a.kind == KILN_ARG_INTEGER) {
      scalars[i] = buf.scalar;
      scalars32[i] = int32_t(buf.scalar);
      if (a.scalarBits == 32 && int64_t(scalars32[i]) != buf.scalar)
        return fail(err, what + ": " + std::to_string(buf.scalar) +
                             " does not fit in i32");
      values[i] = a.scalarBits == 32 ? static_cast<void *>(&scalars32[i])
                                     : static_cast<void *>(&scalars[i]);
      continue;
    }
    bool bytesOk = a.dtype == KILN_DTYPE_I8 && buf.dtype == KILN_DTYPE_U8;
    if (buf.dtype != a.dtype && !bytesOk)
      return fail(err, what + " must be " + dtypeName(a.dtype) + ", got " +
                           dtypeName(buf.dtype));
    if (buf.rank != int32_t(a.shape.size()))
      return fail(err, what + " must have rank " +
                           std::to_string(a.shape.size()) + ", got " +
                           std::to_string(buf.rank));
    if (!buf.data || (buf.rank && !buf.shape))
      return fail(err, what + " has no data or shape");
    std::vector<int64_t> &d = descriptors[i];
    d.assign(3 + 2 * size_t(buf.rank), 0);
    std::memcpy(&d[0], &buf.data, sizeof(void *));
    std::memcpy(&d[1], &buf.data, sizeof(void *));
    int64_t expectedStride = 1, elements = 1;
    for (int32_t r = buf.rank - 1; r >= 0; --r) {
      int64_t size = buf.shape[r];
      int64_t want = a.shape[r];
      if (size < 0)
        return fail(err, what + " has a negative size");
      if (want >= 0 && size != want)
        return fail(err, what + " must have size " + std::to_string(want) +
                             " in dimension " + std::to_string(r) + ", got " +
                             std::to_string(size));
      if (want < 0 && a.kind != KILN_ARG_BYTES) {
        if (tokens >= 0 && size != tokens)
          return fail(err, what + " has " + std::to_string(size) +
                               " tokens in dimension " + std::to_string(r) +
                               "; another argument has " +
                               std::to_string(tokens));
        tokens = size;
      }
      int64_t stride = buf.strides ? buf.strides[r] : expectedStride;
      if (stride != expectedStride && size > 1)
        return fail(err, what + " must be contiguous (row-major)");
      d[3 + r] = size;
      d[3 + buf.rank + r] = expectedStride;
      expectedStride *= size;
      elements *= size;
    }
    const char *begin = static_cast<const char *>(buf.data);
    extents[i] = {begin, begin + elements * dtypeBytes(a.dtype)};
  }
  if (tokens == 0 || (tokens > 0 && f->maxTokens > 0 && tokens > f->maxTokens))
    return fail(err, where + "the token count " + std::to_string(tokens) +
                         " is outside [1, " + std::to_string(f->maxTokens) +
                         "] (the bound the scratch buffer was planned for)");
  for (size_t i = 0; i < n_args; ++i)
    for (size_t j = 0; j < n_args; ++j) {
      bool written = f->args[j].kind == KILN_ARG_RESULT ||
                     f->args[j].kind == KILN_ARG_BYTES;
      if (i == j || !written || f->args[i].kind == KILN_ARG_INTEGER ||
          extents[i].first == extents[i].second ||
          extents[j].first == extents[j].second)
        continue;
      if (extents[i].first < extents[j].second &&
          extents[j].first < extents[i].second)
        return fail(err, where + "argument '" + f->args[i].name +
                             "' overlaps the written buffer '" +
                             f->args[j].name + "'");
    }
  std::vector<void *> descriptorPtrs(n_args);
  for (size_t i = 0; i < n_args; ++i)
    if (f->args[i].kind != KILN_ARG_INTEGER) {
      descriptorPtrs[i] = descriptors[i].data();
      values[i] = &descriptorPtrs[i];
    }

  // Weights, scratch and the pool live with the module.
  alignas(64) static const uint8_t noWeights[64] = {};
  const void *weightData = weights ? weights : noWeights;
  int64_t weightsDesc[5] = {0, 0, 0, int64_t(weights ? weights_size : 64), 1};
  std::memcpy(&weightsDesc[0], &weightData, sizeof(void *));
  std::memcpy(&weightsDesc[1], &weightData, sizeof(void *));
  size_t scratchSize =
      llvm::alignTo(std::max<int64_t>(f->scratchBytes, 64), 64);
  if (module->scratchSize < scratchSize) {
    std::free(module->scratch);
    module->scratch = std::aligned_alloc(64, scratchSize);
    module->scratchSize = module->scratch ? scratchSize : 0;
    if (!module->scratch)
      return fail(err, where + "cannot allocate " +
                           std::to_string(scratchSize) + " scratch bytes");
  }
  int64_t scratchDesc[5] = {0, 0, 0, int64_t(module->scratchSize), 1};
  std::memcpy(&scratchDesc[0], &module->scratch, sizeof(void *));
  std::memcpy(&scratchDesc[1], &module->scratch, sizeof(void *));
  if (!module->pool || kiln_thread_pool_size(module->pool) != n_threads) {
    kiln_thread_pool_free(module->pool);
    module->pool = nullptr;
    const char *why = nullptr;
    if (kiln_thread_pool_create(n_threads, &module->pool, &why) != KILN_OK)
      return fail(err, where + why);
  }
  void *weightsPtr = weightsDesc, *scratchPtr = scratchDesc;
  void *rt = kiln_thread_pool_context(module->pool);
  values.push_back(&weightsPtr);
  values.push_back(&scratchPtr);
  values.push_back(&rt);
  auto run = [&](int tid, int nth) {
    int32_t t = tid, n = nth;
    llvm::SmallVector<void *, 16> slots(values.begin(), values.end());
    slots.push_back(&t);
    slots.push_back(&n);
    f->packed(slots.data());
  };
  kiln_thread_pool_run(
      module->pool,
      [](void *ctx, int32_t tid, int32_t nth) {
        (*static_cast<decltype(run) *>(ctx))(tid, nth);
      },
      &run);
  return KILN_OK;
}

} // extern "C"
