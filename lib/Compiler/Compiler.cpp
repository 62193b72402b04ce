//===- Compiler.cpp - the pipelines behind kiln-compile -------------------===//

#include "Compiler/Compiler.h"

#include "Compiler/ArtifactWriter.h"
#include "Compiler/CompilerContext.h"
#include "Compiler/HostCodegen.h"
#include "Compiler/NestingLimit.h"
#include "Conversion/Passes.h"
#include "Import/ModelImporter.h"
#include "Import/Safetensors.h"
#include "Kiln/IR/KilnDialect.h"
#include "Kiln/Transforms/Passes.h"
#include "Runtime/Tokenizer.h"
#include "kiln/runtime/Artifact.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"

using namespace mlir;

namespace kiln {

namespace {

llvm::Error fail(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

llvm::Error writeOutput(const std::string &path, llvm::StringRef bytes) {
  // llvm::writeToOutput writes a temporary file and renames it into place.
  return llvm::writeToOutput(path, [&](llvm::raw_ostream &os) {
    os << bytes;
    return llvm::Error::success();
  });
}

std::string printModule(ModuleOp module) {
  std::string text;
  llvm::raw_string_ostream os(text);
  module.print(os);
  os << '\n'; // a text file ends with a newline, as kiln-opt's output does
  return text;
}

/// The bytes of each file a module's #kiln.external weights name.
using WeightFiles = llvm::StringMap<llvm::ArrayRef<uint8_t>>;

/// Copies every weight a module references into one blob (64-byte aligned,
/// each distinct range once: tied embeddings are stored a single time) and
/// points the module's kiln.weight ops at it. A kiln.pack of a weight is
/// performed here: the blob holds the packed bytes, in place of the
/// original when nothing else reads it.
llvm::Expected<std::string> packWeights(ModuleOp module,
                                        const WeightFiles &files) {
  std::string blob;
  // (file, file offset, size, packed?) -> blob offset
  std::map<std::tuple<std::string, uint64_t, uint64_t, bool>, uint64_t> placed;
  MLIRContext *ctx = module.getContext();
  auto name = StringAttr::get(ctx, "weights");
  llvm::Error error = llvm::Error::success();
  // A weight's range and the bytes of the file it is in.
  auto rangeOf = [&](mlir::kiln::WeightOp op)
      -> std::optional<
          std::pair<mlir::kiln::ExternalDataAttr, llvm::ArrayRef<uint8_t>>> {
    auto ext = dyn_cast<mlir::kiln::ExternalDataAttr>(op.getSource());
    if (!ext || error)
      return std::nullopt;
    llvm::StringRef sourcePath = ext.getPath().getValue();
    auto file = files.find(sourcePath);
    if (file == files.end()) {
      error = fail("weight '" + sourcePath + "' is not in the model file");
      return std::nullopt;
    }
    uint64_t end;
    if (__builtin_add_overflow(ext.getOffset(), ext.getSize(), &end) ||
        end > file->second.size()) {
      error = fail(sourcePath + ": weight range past the end of the file");
      return std::nullopt;
    }
    return std::make_pair(ext, file->second);
  };
  auto place = [&](std::tuple<std::string, uint64_t, uint64_t, bool> key,
                   llvm::function_ref<void(char *)> write,
                   uint64_t bytes) -> uint64_t {
    auto it = placed.find(key);
    if (it != placed.end())
      return it->second;
    uint64_t at = llvm::alignTo(blob.size(), 64);
    blob.resize(at + bytes, '\0');
    write(blob.data() + at);
    placed.emplace(key, at);
    return at;
  };

  llvm::DenseSet<Operation *> packedOps;
  SmallVector<mlir::kiln::PackOp> packs;
  module.walk([&](mlir::kiln::PackOp op) { packs.push_back(op); });
  for (mlir::kiln::PackOp pack : packs) {
    auto from = pack.getWeight().getDefiningOp<mlir::kiln::WeightOp>();
    if (!from)
      return fail("kiln.pack of a value that is not a kiln.weight");
    auto range = rangeOf(from);
    if (error)
      return std::move(error);
    if (!range)
      return fail("kiln.pack of a weight that is not in the model file");
    mlir::kiln::ExternalDataAttr ext = range->first;
    llvm::ArrayRef<uint8_t> source = range->second;
    llvm::StringRef sourcePath = ext.getPath().getValue();
    mlir::kiln::WeightType type = pack.getType();
    const mlir::kiln::Rows16Format *format = type.getRows16Format();
    FailureOr<uint64_t> sourceBytes = from.getType().getStorageBytes();
    FailureOr<uint64_t> packedBytes = type.getStorageBytes();
    if (!format || failed(sourceBytes) || failed(packedBytes) ||
        *sourceBytes != ext.getSize())
      return fail(sourcePath + ": weight range does not hold a " +
                  llvm::Twine(type.getNumRows()) + " x " +
                  llvm::Twine(type.getInnerDim()) + " weight");
    uint64_t at = place(
        {sourcePath.str(), ext.getOffset(), ext.getSize(), true},
        [&](char *dest) {
          mlir::kiln::packRows16(*format, type.getNumRows(),
                                 type.getInnerDim(),
                                 source.data() + ext.getOffset(),
                                 reinterpret_cast<uint8_t *>(dest));
        },
        *packedBytes);
    OpBuilder b(pack);
    auto packed = mlir::kiln::WeightOp::create(
        b, pack.getLoc(), type,
        mlir::kiln::ExternalDataAttr::get(ctx, name, at, *packedBytes));
    packedOps.insert(packed);
    pack.replaceAllUsesWith(packed.getResult());
    pack.erase();
    if (from.use_empty())
      from.erase();
  }

  module.walk([&](mlir::kiln::WeightOp op) {
    if (packedOps.contains(op))
      return;
    auto range = rangeOf(op);
    if (!range)
      return;
    mlir::kiln::ExternalDataAttr ext = range->first;
    llvm::ArrayRef<uint8_t> source = range->second;
    uint64_t at = place(
        {ext.getPath().str(), ext.getOffset(), ext.getSize(), false},
        [&](char *dest) {
          std::memcpy(dest, source.data() + ext.getOffset(), ext.getSize());
        },
        ext.getSize());
    op.setSourceAttr(
        mlir::kiln::ExternalDataAttr::get(ctx, name, at, ext.getSize()));
  });
  if (error)
    return std::move(error);
  return blob;
}

/// Runs kiln-pack-weights when linear layers take int8 activations.
llvm::Error packForKernels(ModuleOp module, const CompileOptions &options) {
  if (options.activations != mlir::kiln::ActivationPrecision::Int8)
    return llvm::Error::success();
  FirstError diags(*module.getContext());
  PassManager pm(module.getContext());
  pm.addPass(mlir::kiln::createKilnPackWeights());
  if (failed(pm.run(module)))
    return fail(options.input + ": " + diags.take("packing weights failed"));
  return llvm::Error::success();
}

llvm::StringRef singleVariantKernels(const CompileOptions &options) {
  return options.kernels == "generic" ? llvm::StringRef("generic")
                                      : llvm::StringRef(options.cpuVariant);
}

/// Lowers `module` to the LLVM dialect with kernels for CPU variant `cpu`.
llvm::Error lowerToLLVM(ModuleOp module, const CompileOptions &options,
                        llvm::StringRef cpu) {
  llvm::StringRef input = options.input;
  std::optional<mlir::kiln::KernelISA> isa = mlir::kiln::parseKernelISA(cpu);
  if (!isa)
    return fail("unknown CPU variant '" + cpu + "'");
  FirstError diags(*module.getContext());
  PassManager pm(module.getContext());
  mlir::kiln::KilnToLLVMOptions lowering;
  lowering.maxTokens = options.mlirMaxTokens;
  lowering.activations = options.activations;
  lowering.cpu = *isa;
  mlir::kiln::buildKilnToLLVMPipeline(pm, lowering);
  if (failed(pm.run(module)))
    return fail(input + ": lowering failed: " + diags.take("unknown error"));
  return llvm::Error::success();
}

void report(const CompileOptions &options, const std::string &stage,
            double fraction) {
  if (options.progress)
    options.progress(stage, fraction);
}

llvm::Error emitSingleVariant(ModuleOp lowered, const CompileOptions &options) {
  const CpuTarget *target = lookupCpuTarget(options.cpuVariant);
  if (!target)
    return fail("unknown CPU variant '" + options.cpuVariant + "'");
  llvm::Expected<std::string> bytes = std::string();
  switch (options.emit) {
  case EmitKind::LLVMIR:
    bytes = emitLLVMIR(lowered, *target);
    break;
  case EmitKind::Assembly:
    bytes = emitAssembly(lowered, *target);
    break;
  default:
    bytes = emitSharedObject(lowered, *target);
    break;
  }
  if (!bytes)
    return bytes.takeError();
  return writeOutput(options.output, *bytes);
}

/// The file an .mlir module's #kiln.external weights name, if any.
std::optional<std::string> weightFileOf(ModuleOp module) {
  std::optional<std::string> path;
  module.walk([&](mlir::kiln::WeightOp w) {
    if (auto ext = dyn_cast<mlir::kiln::ExternalDataAttr>(w.getSource()))
      path = ext.getPath().str();
  });
  return path;
}

/// Whether the kernels want some weight of `module` repacked (so its code
/// cannot read the weight file as it is).
llvm::Expected<bool> kernelsRepackWeights(ModuleOp module,
                                          const CompileOptions &options) {
  OwningOpRef<ModuleOp> copy = module.clone();
  if (auto e = packForKernels(*copy, options))
    return std::move(e);
  return copy->walk([](mlir::kiln::PackOp) { return WalkResult::interrupt(); })
      .wasInterrupted();
}

llvm::Error compileMLIR(MLIRContext &ctx, const CompileOptions &options) {
  FirstError diags(ctx);
  llvm::SourceMgr sourceMgr;
  std::string error;
  auto file = openInputFile(options.input, &error);
  if (!file)
    return fail(options.input + ": " + error);
  if (llvm::Error e = checkNestingDepth(*file))
    return e;
  sourceMgr.AddNewSourceBuffer(std::move(file), llvm::SMLoc());
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, &ctx);
  if (!module)
    return fail(diags.take(options.input + ": cannot parse"));
  if (options.emit == EmitKind::Artifact || options.emit == EmitKind::KilnMLIR)
    return fail("--emit=kiln and --emit=mlir need a .gguf model; an .mlir "
                "input can be emitted as llvm-mlir, llvm, asm or so");
  // With --weights-out the weights are packed and written; without it the
  // code reads the module's weight file as it is, so nothing may need
  // packing.
  std::unique_ptr<llvm::MemoryBuffer> weightFile;
  std::optional<llvm::ArrayRef<uint8_t>> weightBytes;
  if (!options.weightsOutput.empty()) {
    weightBytes.emplace();
    if (std::optional<std::string> path = weightFileOf(*module)) {
      auto buffer = llvm::MemoryBuffer::getFile(
          *path, /*IsText=*/false, /*RequiresNullTerminator=*/false);
      if (!buffer)
        return fail(*path + ": " + buffer.getError().message());
      weightFile = std::move(*buffer);
      weightBytes = llvm::ArrayRef<uint8_t>(
          reinterpret_cast<const uint8_t *>(weightFile->getBufferStart()),
          weightFile->getBufferSize());
    }
  } else {
    llvm::Expected<bool> repacks = kernelsRepackWeights(*module, options);
    if (!repacks)
      return repacks.takeError();
    if (*repacks)
      return fail(options.input + ": its weights are repacked for the int8 "
                                  "kernels; name the file to write them to "
                                  "with --weights-out");
  }
  report(options, "lowering", 0.2);
  llvm::Expected<LoweredMLIR> lowered =
      lowerMLIRModule(*module, options, weightBytes);
  if (!lowered)
    return lowered.takeError();
  if (lowered->weights)
    if (auto e = writeOutput(options.weightsOutput, *lowered->weights))
      return e;
  if (options.emit == EmitKind::LLVMMLIR)
    return writeOutput(options.output, printModule(*module));
  report(options, "code generation", 0.5);
  return emitSingleVariant(*module, options);
}

/// Packs, lowers and writes an imported model whose weights are in `files`.
llvm::Error compileImported(llvm::Expected<ImportedModel> model,
                            const WeightFiles &files,
                            const CompileOptions &options) {
  if (!model)
    return model.takeError();
  // An artifact whose vocabulary the runtime would refuse is refused now.
  std::string vocabError;
  if (!Tokenizer::fromJSON(model->vocabJSON, vocabError))
    return fail(options.input + ": " + vocabError);
  ModuleOp module = *model->module;
  if (options.emit == EmitKind::KilnMLIR)
    return writeOutput(options.output, printModule(module));

  // Weights: the bytes of every tensor the graph uses, one section.
  report(options, "packing weights", 0.1);
  if (auto e = packForKernels(module, options))
    return e;
  llvm::Expected<std::string> weights = packWeights(module, files);
  if (!weights)
    return weights.takeError();

  if (options.emit != EmitKind::Artifact) {
    report(options, "lowering", 0.2);
    if (auto e = lowerToLLVM(module, options, singleVariantKernels(options)))
      return e;
    if (options.emit == EmitKind::LLVMMLIR)
      return writeOutput(options.output, printModule(module));
    return emitSingleVariant(module, options);
  }

  // Each CPU variant gets kernels for its own instruction set.
  ArtifactBuilder builder;
  llvm::json::Array hosts;
  uint64_t commonFeatures = ~uint64_t(0);
  IntegerAttr scratch;
  llvm::ArrayRef<CpuTarget> targets = getCpuTargets();
  for (auto [i, target] : llvm::enumerate(targets)) {
    report(options, "lowering " + target.name,
           0.2 + 0.6 * double(i) / targets.size());
    OwningOpRef<ModuleOp> variant = module.clone();
    if (auto e = lowerToLLVM(*variant, options, target.name))
      return e;
    auto forward = variant->lookupSymbol<LLVM::LLVMFuncOp>("forward");
    auto bytes = forward ? forward->getAttrOfType<IntegerAttr>(
                           mlir::kiln::KilnDialect::ScratchBytesAttrHelper::getNameStr())
                         : IntegerAttr();
    if (!bytes || (scratch && bytes != scratch))
      return fail(options.input + ": the lowered module has no forward step "
                                  "with one scratch size (a compiler bug)");
    scratch = bytes;
    report(options, "code generation " + target.name,
           0.2 + 0.6 * (i + 0.5) / targets.size());
    llvm::Expected<std::string> so = emitSharedObject(*variant, target);
    if (!so)
      return so.takeError();
    std::string section = "host." + target.name;
    builder.addSection(section, KILN_SECTION_HOST_CODE, std::move(*so));
    llvm::json::Array features;
    uint64_t bits = 0;
    for (const std::string &f : target.runtimeFeatures) {
      features.push_back(f);
      bits |= cpuFeatureFromName(f.c_str());
    }
    commonFeatures &= bits;
    hosts.push_back(llvm::json::Object{{"section", section},
                                       {"cpu_features", std::move(features)}});
  }
  const ModelInfo &info = model->info;
  uint64_t kvBytes = uint64_t(2) * info.layers * info.context * info.kvHeads *
                     info.headDim * sizeof(float);
  llvm::json::Object manifest{
      {"format", 1},
      {"model",
       llvm::json::Object{{"arch", info.arch},
                          {"name", info.name},
                          {"n_layers", info.layers},
                          {"n_embd", info.embedding},
                          {"n_heads", info.heads},
                          {"n_kv_heads", info.kvHeads},
                          {"head_dim", info.headDim},
                          {"n_vocab", info.vocab},
                          {"n_ctx", info.context}}},
      {"entry", llvm::json::Object{{"symbol", "_mlir_ciface_forward"},
                                   {"max_tokens", model->maxTokens},
                                   {"scratch_bytes", scratch.getInt()},
                                   {"kv_cache_bytes", int64_t(kvBytes)}}},
      {"host", std::move(hosts)},
      {"weights", llvm::json::Object{{"section", "weights"}}},
      {"tokenizer", llvm::json::Object{{"section", "vocab"}}},
      {"sampling", llvm::json::Object{{"temperature", 0.8},
                                      {"top_k", 40},
                                      {"top_p", 0.95},
                                      {"min_p", 0.05},
                                      {"repeat_penalty", 1.0}}},
  };
  // An encoder's step returns its sentence embedding, not logits.
  if (info.encoder)
    manifest.getObject("model")->try_emplace("kind", "encoder");
  std::string manifestText;
  llvm::raw_string_ostream(manifestText) << llvm::json::Value(std::move(manifest));
  builder.addSection("manifest", KILN_SECTION_MANIFEST, std::move(manifestText));
  builder.addSection("vocab", KILN_SECTION_VOCAB, std::move(model->vocabJSON));
  builder.addSection("weights", KILN_SECTION_WEIGHTS, std::move(*weights));
  builder.setMinCpuFeatures(commonFeatures);
  builder.setProgressCallback([&](uint64_t done, uint64_t total) {
    report(options, "writing", 0.8 + 0.2 * double(done) / std::max<uint64_t>(total, 1));
    return true;
  });
  std::string err;
  if (!writeArtifact(options.output, builder, err))
    return fail(err);
  report(options, "done", 1.0);
  return llvm::Error::success();
}

ImportOptions importOptionsOf(const CompileOptions &options) {
  ImportOptions importOptions;
  importOptions.contextLength = options.contextLength;
  importOptions.maxTokens = options.maxTokens;
  return importOptions;
}

llvm::Error compileGGUF(MLIRContext &ctx, const CompileOptions &options) {
  report(options, "reading model", 0.0);
  llvm::Expected<gguf::GGUFFile> file = gguf::GGUFFile::open(options.input);
  if (!file)
    return file.takeError();
  WeightFiles files;
  if (!file->tensors().empty()) {
    const gguf::TensorInfo &first = file->tensors().front();
    llvm::ArrayRef<uint8_t> data = file->tensorData(first);
    files[file->path()] = llvm::ArrayRef<uint8_t>(
        data.data() - first.fileOffset, file->fileSize());
  }
  report(options, "importing", 0.05);
  return compileImported(importGGUF(ctx, *file, importOptionsOf(options)),
                         files, options);
}

/// A Hugging Face checkpoint: safetensors weights (one file or shards),
/// config.json and tokenizer.json.
llvm::Error compileSafetensors(MLIRContext &ctx,
                               const CompileOptions &options) {
  report(options, "reading model", 0.0);
  llvm::Expected<safetensors::Checkpoint> checkpoint =
      safetensors::openCheckpoint(options.input);
  if (!checkpoint)
    return checkpoint.takeError();
  WeightFiles files;
  for (const safetensors::SafetensorsFile &shard : checkpoint->shards)
    files[shard.path()] = shard.fileBytes();
  report(options, "importing", 0.05);
  return compileImported(
      importSafetensors(ctx, *checkpoint, importOptionsOf(options)), files,
      options);
}

} // namespace

llvm::Expected<LoweredMLIR>
lowerMLIRModule(ModuleOp module, const CompileOptions &options,
                std::optional<llvm::ArrayRef<uint8_t>> weightFileBytes) {
  LoweredMLIR lowered;
  if (weightFileBytes) {
    if (auto e = packForKernels(module, options))
      return std::move(e);
    WeightFiles files;
    files[weightFileOf(module).value_or("")] = *weightFileBytes;
    llvm::Expected<std::string> blob = packWeights(module, files);
    if (!blob)
      return blob.takeError();
    lowered.weights = std::move(*blob);
  }
  if (auto e = lowerToLLVM(module, options, singleVariantKernels(options)))
    return std::move(e);
  return lowered;
}

llvm::Error parseMLIRPipelineOptions(llvm::StringRef pipeline,
                                     CompileOptions &options) {
  llvm::SmallVector<llvm::StringRef> words;
  pipeline.split(words, ' ', /*MaxSplit=*/-1, /*KeepEmpty=*/false);
  for (llvm::StringRef word : words) {
    auto [key, value] = word.split('=');
    if (key == "activations") {
      auto precision = mlir::kiln::parseActivationPrecision(value);
      if (!precision)
        return fail("pipeline option " + word +
                    " is invalid (activations=int8|f32)");
      options.activations = *precision;
    } else if (key == "max-tokens") {
      if (value.getAsInteger(10, options.mlirMaxTokens) ||
          options.mlirMaxTokens < 1)
        return fail("pipeline option " + word +
                    " is invalid (max-tokens=N >= 1)");
    } else if (key == "cpu") {
      std::optional<mlir::kiln::KernelISA> isa =
          mlir::kiln::parseKernelISA(value);
      if (!isa)
        return fail("pipeline option " + word +
                    " is invalid (cpu=x86-64-v4|x86-64-v3|generic)");
      if (*isa == mlir::kiln::KernelISA::Generic) {
        options.kernels = "generic";
      } else {
        options.kernels = "native";
        options.cpuVariant = value.str();
      }
    } else {
      return fail("unknown pipeline option '" + key +
                  "' (known: activations, max-tokens, cpu)");
    }
  }
  return llvm::Error::success();
}

bool parseEmitKind(llvm::StringRef text, EmitKind &kind) {
  static const std::pair<llvm::StringRef, EmitKind> kinds[] = {
      {"kiln", EmitKind::Artifact},  {"mlir", EmitKind::KilnMLIR},
      {"llvm-mlir", EmitKind::LLVMMLIR}, {"llvm", EmitKind::LLVMIR},
      {"asm", EmitKind::Assembly},   {"so", EmitKind::SharedObject}};
  for (auto [name, k] : kinds)
    if (text == name) {
      kind = k;
      return true;
    }
  return false;
}

llvm::Error compile(const CompileOptions &options) {
  if (options.target != "cpu")
    return fail("--target=" + options.target +
                " is not available yet (supported: cpu)");
  if (options.output.empty())
    return fail("no output file given (-o)");
  if (options.kernels != "native" && options.kernels != "generic")
    return fail("--kernels=" + options.kernels + " is not one of native, generic");
  MLIRContext ctx(MLIRContext::Threading::DISABLED);
  registerCompilerDialects(ctx);
  if (llvm::StringRef(options.input).ends_with(".mlir"))
    return compileMLIR(ctx, options);
  if (llvm::Error e = safetensors::refusePickleCheckpoint(options.input))
    return e;
  if (llvm::StringRef(options.input).ends_with(".safetensors") ||
      llvm::sys::fs::is_directory(options.input))
    return compileSafetensors(ctx, options);
  return compileGGUF(ctx, options);
}

} // namespace kiln
