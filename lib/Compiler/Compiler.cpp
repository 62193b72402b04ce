//===- Compiler.cpp - the pipelines behind kiln-compile -------------------===//

#include "Compiler/Compiler.h"

#include "Compiler/ArtifactWriter.h"
#include "Compiler/CompilerContext.h"
#include "Compiler/CudaCodegen.h"
#include "Compiler/HostCodegen.h"
#include "Compiler/NestingLimit.h"
#include "Conversion/Passes.h"
#include "Import/GGUFWriter.h"
#include "Import/ModelImporter.h"
#include "Import/Safetensors.h"
#include "Kiln/IR/KilnDialect.h"
#include "Kiln/IR/WeightStore.h"
#include "Kiln/Transforms/Passes.h"
#include "Runtime/Tokenizer.h"
#include "kiln/runtime/Artifact.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"

#include <future>

using namespace mlir;

namespace kiln {

namespace {

llvm::Error fail(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

/// The emit kinds that write a compiled model: a .kiln file or an executable
/// holding one.
bool writesArtifact(EmitKind kind) {
  return kind == EmitKind::Artifact || kind == EmitKind::Executable;
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

/// The bytes of each file an imported model's weights name.
using WeightFiles = llvm::StringMap<llvm::ArrayRef<uint8_t>>;

/// Lays the weights `module` uses out in the weights section (each distinct
/// one once, 64-byte aligned; see gatherWeights) and points the module's
/// kiln.weight ops at it.
llvm::Expected<std::string> gatherWeightSection(ModuleOp module,
                                                llvm::StringRef input) {
  FirstError diags(*module.getContext());
  FailureOr<std::string> section = mlir::kiln::gatherWeights(module, "weights");
  if (failed(section))
    return fail(input + ": " + diags.take("cannot read the weights"));
  return std::move(*section);
}

/// Runs kiln-pack-weights for the target's kernels: target=cuda always (the
/// GEMV reads #kiln_gpu.split), target=cpu when linear layers take
/// integer activations.
llvm::Error packForKernels(ModuleOp module, const CompileOptions &options) {
  bool cuda = options.target == "cuda";
  if (!cuda && options.activations == mlir::kiln::ActivationPrecision::F32)
    return llvm::Error::success();
  FirstError diags(*module.getContext());
  PassManager pm(module.getContext());
  pm.addPass(mlir::kiln::createKilnPackWeights(
      {cuda ? mlir::kiln::LoweringTarget::CUDA
            : mlir::kiln::LoweringTarget::CPU,
       options.unstructured}));
  if (failed(pm.run(module)))
    return fail(options.input + ": " + diags.take("packing weights failed"));
  return llvm::Error::success();
}

int64_t rankCount(const CompileOptions &options) {
  return options.tensorParallel * options.pipelineParallel;
}

/// Runs kiln-shard for --tp / --pp: one step function per rank.
llvm::Error shardForRanks(ModuleOp module, const CompileOptions &options) {
  if (rankCount(options) == 1)
    return llvm::Error::success();
  FirstError diags(*module.getContext());
  PassManager pm(module.getContext());
  mlir::kiln::KilnShardOptions shard;
  shard.tp = options.tensorParallel;
  shard.pp = options.pipelineParallel;
  pm.addPass(mlir::kiln::createKilnShard(shard));
  if (failed(pm.run(module)))
    return fail(options.input + ": " + diags.take("sharding failed"));
  return llvm::Error::success();
}

/// The step function names of the ranks: `forward`, or kiln-shard's
/// `forward_rank<r>`.
std::vector<std::string> stepFunctionNames(const CompileOptions &options) {
  int64_t n = rankCount(options);
  if (n == 1)
    return {"forward"};
  std::vector<std::string> names;
  for (int64_t r = 0; r < n; ++r)
    names.push_back("forward_rank" + std::to_string(r));
  return names;
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
  lowering.reuseScratch = !options.calibrationTaps;
  mlir::kiln::buildKilnToLLVMPipeline(pm, lowering);
  if (failed(pm.run(module)))
    return fail(input + ": lowering failed: " + diags.take("unknown error"));
  return llvm::Error::success();
}

/// --calibration-taps: where the step leaves each linear layer's input in
/// scratch, planned as lowerToLLVM plans it (kiln-fuse without a rope
/// epilogue at f32, kiln-plan-memory without reuse). One entry per distinct
/// input, with the tensor names of the weights that multiply it; an input
/// that is not a whole f32 slot of its own (a slice) has no tap.
llvm::Expected<llvm::json::Array>
planCalibrationTaps(ModuleOp module, const CompileOptions &options) {
  MLIRContext *ctx = module.getContext();
  OwningOpRef<ModuleOp> planned = module.clone();
  FirstError diags(*ctx);
  PassManager pm(ctx);
  pm.addPass(mlir::kiln::createKilnFuse({/*ropeEpilogue=*/false}));
  pm.addPass(mlir::kiln::createKilnPlanMemory(
      {options.mlirMaxTokens, /*reuse=*/false}));
  if (failed(pm.run(*planned)))
    return fail(options.input + ": " +
                diags.take("planning the calibration taps failed"));
  struct Tap {
    int64_t offset, cols;
    llvm::json::Array weights;
  };
  llvm::MapVector<Value, Tap> taps;
  auto slots = mlir::kiln::KilnDialect::SlotAttrHelper(ctx);
  planned->walk([&](mlir::kiln::LinearOp linear) {
    auto weight = linear.getWeight().getDefiningOp<mlir::kiln::WeightOp>();
    auto name = weight ? dyn_cast<NameLoc>(weight.getLoc()) : NameLoc();
    auto type = cast<RankedTensorType>(linear.getInput().getType());
    if (!name || type.getRank() != 2 || !type.getElementType().isF32() ||
        !type.isDynamicDim(0))
      return;
    // A reshape keeps its source's offset; a slice does not.
    Value input = linear.getInput();
    while (isa_and_nonnull<tensor::ExpandShapeOp, tensor::CollapseShapeOp>(
        input.getDefiningOp()))
      input = input.getDefiningOp()->getOperand(0);
    auto result = dyn_cast<OpResult>(input);
    DenseI64ArrayAttr slot =
        result ? slots.getAttr(result.getOwner()) : DenseI64ArrayAttr();
    if (!slot || slot[2 * result.getResultNumber()] < 0)
      return;
    Tap &tap = taps.try_emplace(input, Tap{slot[2 * result.getResultNumber()],
                                           type.getDimSize(1), {}})
                   .first->second;
    tap.weights.push_back(name.getName().str());
  });
  llvm::json::Array out;
  for (auto &[value, tap] : taps)
    out.push_back(llvm::json::Object{{"weights", std::move(tap.weights)},
                                     {"offset", tap.offset},
                                     {"cols", tap.cols}});
  return out;
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

/// --target=cuda with --emit=llvm-mlir (the host step, kernels serialized
/// away) or --emit=ptx (the PTX of the first GPU arch).
llvm::Error emitCuda(ModuleOp module, const CompileOptions &options) {
  if (options.emit != EmitKind::PTX && options.emit != EmitKind::LLVMMLIR)
    return fail("--target=cuda emits kiln (an artifact), llvm-mlir or ptx");
  report(options, "lowering to CUDA", 0.2);
  llvm::Expected<CudaCode> code =
      lowerToCuda(module, options.mlirMaxTokens,
                  mlir::kiln::activationBits(options.activations),
                  /*withCubins=*/false);
  if (!code)
    return fail(options.input + ": " + llvm::toString(code.takeError()));
  if (options.emit == EmitKind::LLVMMLIR)
    return writeOutput(options.output, printModule(module));
  for (const CudaImage &image : code->images)
    if (image.format == "ptx" && image.arch == getCudaArchs().front())
      return writeOutput(options.output, image.bytes);
  return fail("no PTX was generated (a compiler bug)");
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
  if (writesArtifact(options.emit) || options.emit == EmitKind::KilnMLIR ||
      options.emit == EmitKind::GGUF)
    return fail("--emit=kiln, exe, mlir and gguf need a .gguf model; an .mlir "
                "input can be emitted as llvm-mlir, llvm, asm, so or ptx");
  if (options.quantize)
    return fail("--quantize needs a .gguf model; run kiln-opt "
                "--kiln-quantize on an .mlir module");
  if (options.prune)
    return fail("--prune needs a .gguf model; run kiln-opt --kiln-prune on "
                "an .mlir module");
  if (!options.distill.empty())
    return fail("--distill needs a .gguf model; run kiln-opt --kiln-distill "
                "on an .mlir module");
  if (rankCount(options) > 1)
    return fail("--tp and --pp need a model; run kiln-opt --kiln-shard on "
                "an .mlir module");
  if (options.target == "cuda")
    return emitCuda(*module, options);
  // With --weights-out the weights are packed and written; without it the
  // code reads the module's weight file as it is, so nothing may need
  // packing.
  bool withWeights = !options.weightsOutput.empty();
  if (!withWeights &&
      options.activations != mlir::kiln::ActivationPrecision::F32 &&
      mlir::kiln::kilnPackWeightsRepacks(*module,
                                         mlir::kiln::LoweringTarget::CPU,
                                         options.unstructured))
    return fail(options.input + ": its weights are repacked for the int8 "
                                "kernels; name the file to write them to "
                                "with --weights-out");
  report(options, "lowering", 0.2);
  llvm::Expected<LoweredMLIR> lowered =
      lowerMLIRModule(*module, options, withWeights);
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

/// llama.cpp's llama_ftype of a model whose linear layers are all `type`
/// (llama.h: LLAMA_FTYPE_MOSTLY_Q4_0 = 2, ...).
std::optional<uint32_t> getLlamaFileType(GGMLType type) {
  switch (type) {
  case GGMLType::Q4_0:
    return 2;
  case GGMLType::Q4_1:
    return 3;
  case GGMLType::Q8_0:
    return 7;
  case GGMLType::Q5_0:
    return 8;
  case GGMLType::Q5_1:
    return 9;
  default:
    return std::nullopt;
  }
}

/// --emit=gguf: `file` with each tensor that kiln-quantize rewrote (found by
/// the tensor name the importer gives each weight's location) in its new
/// ggml type, everything else as it was.
llvm::Error writeQuantizedGGUF(ModuleOp module, const gguf::GGUFFile &file,
                               const CompileOptions &options) {
  llvm::StringMap<mlir::kiln::WeightOp> rewritten;
  module.walk([&](mlir::kiln::WeightOp op) {
    auto name = dyn_cast<NameLoc>(op.getLoc());
    if (name && !isa<mlir::kiln::ExternalDataAttr>(op.getSource()))
      rewritten[name.getName()] = op;
  });
  FirstError diags(*module.getContext());
  std::vector<gguf::TensorToWrite> tensors;
  std::optional<GGMLType> quantizedType;
  for (const gguf::TensorInfo &info : file.tensors()) {
    gguf::TensorToWrite tensor{info.name, info.dims, info.type,
                               file.tensorData(info)};
    if (mlir::kiln::WeightOp op = rewritten.lookup(info.name)) {
      mlir::kiln::QuantSchemeAttr q = op.getType().getQuant();
      const GGMLFormat *format =
          q && q.getLayout() == mlir::kiln::QuantLayout::GGUF
              ? mlir::kiln::findGGMLBlockFormat(q)
              : nullptr;
      // awq rewrites norm weights as f32.
      Type element = op.getType().getElementType();
      bool floats = !q && element && element.isF32();
      if (!format && !floats)
        return fail(options.input + ": --emit=gguf needs ggml block types; "
                                    "quantize with format=gguf (Kiln's packed "
                                    "layout has no ggml type)");
      FailureOr<ArrayRef<char>> bytes = mlir::kiln::readWeightBytes(op);
      if (failed(bytes))
        return fail(options.input + ": " + diags.take("cannot read weight"));
      if (floats) {
        tensor.type = GGMLType::F32;
        tensor.data = llvm::ArrayRef<uint8_t>(
            reinterpret_cast<const uint8_t *>(bytes->data()), bytes->size());
        tensors.push_back(std::move(tensor));
        continue;
      }
      tensor.type = format->type;
      tensor.data = llvm::ArrayRef<uint8_t>(
          reinterpret_cast<const uint8_t *>(bytes->data()), bytes->size());
      quantizedType = format->type;
    }
    tensors.push_back(std::move(tensor));
  }
  std::vector<gguf::KeyValue> metadata(file.metadata().begin(),
                                       file.metadata().end());
  if (std::optional<uint32_t> fileType =
          quantizedType ? getLlamaFileType(*quantizedType) : std::nullopt) {
    auto set = [&](llvm::StringRef key, gguf::Value value) {
      for (gguf::KeyValue &kv : metadata)
        if (kv.key == key) {
          kv.value = std::move(value);
          return;
        }
      metadata.push_back({key.str(), std::move(value)});
    };
    set("general.file_type",
        gguf::Value::makeUInt(gguf::ValueType::UInt32, *fileType));
    // ggml's GGML_QNT_VERSION, which llama-quantize writes beside it.
    set("general.quantization_version",
        gguf::Value::makeUInt(gguf::ValueType::UInt32, 2));
  }
  return gguf::writeGGUF(options.output, metadata, tensors, file.alignment());
}

/// Quantizes, packs, lowers and writes an imported model whose weights are in
/// `files`; `ggufFile` is the GGUF it came from, if any (--emit=gguf).
llvm::Error compileImported(llvm::Expected<ImportedModel> model,
                            const WeightFiles &files,
                            const gguf::GGUFFile *ggufFile,
                            const CompileOptions &options) {
  if (!model)
    return model.takeError();
  // An artifact whose vocabulary the runtime would refuse is refused now.
  std::string vocabError;
  if (!Tokenizer::fromJSON(model->vocabJSON, vocabError))
    return fail(options.input + ": " + vocabError);
  ModuleOp module = *model->module;
  MLIRContext &ctx = *module.getContext();
  // Passes read the weights through the weight store, from the mappings the
  // readers already hold.
  for (const auto &file : files)
    mlir::kiln::WeightStore::get(&ctx).provideFile(
        file.getKey(),
        llvm::ArrayRef<char>(reinterpret_cast<const char *>(file.second.data()),
                             file.second.size()));
  if (!options.distill.empty() && !options.prune)
    return fail("--distill refits pruned weights: give --prune too");
  if (options.prune) {
    report(options, "pruning", 0.05);
    FirstError diags(ctx);
    // The teacher kiln-distill fits to: the weights before pruning (the
    // clone shares their bytes).
    OwningOpRef<ModuleOp> teacher;
    if (!options.distill.empty())
      teacher = module.clone();
    if (failed(mlir::kiln::pruneWeights(module, *options.prune)))
      return fail(options.input + ": " + diags.take("pruning failed"));
    if (teacher) {
      // Its rows' least-squares solves run on the context's threads (a
      // model's worth takes minutes on one), the rest of the compile on one.
      ctx.enableMultithreading(true);
      LogicalResult distilled =
          mlir::kiln::distillWeights(module, *teacher, options.distill);
      ctx.enableMultithreading(false);
      if (failed(distilled))
        return fail(options.input + ": " + diags.take("distilling failed"));
    }
  }
  if (options.quantize) {
    report(options, "quantizing", 0.07);
    FirstError diags(ctx);
    if (failed(mlir::kiln::quantizeWeights(module, *options.quantize)))
      return fail(options.input + ": " + diags.take("quantizing failed"));
  }
  if (rankCount(options) > 1 && options.emit == EmitKind::GGUF)
    return fail("--emit=gguf writes the whole model: --tp and --pp do not "
                "apply");
  if (rankCount(options) > 1 && options.target == "cuda")
    return fail("--tp and --pp are for CPU ranks only (--target=cpu)");
  if (auto e = shardForRanks(module, options))
    return e;
  if (options.emit == EmitKind::KilnMLIR)
    return writeOutput(options.output, printModule(module));
  if (options.emit == EmitKind::GGUF) {
    if (!ggufFile)
      return fail(options.input + ": --emit=gguf needs a .gguf model");
    return writeQuantizedGGUF(module, *ggufFile, options);
  }

  std::optional<llvm::json::Array> taps;
  if (options.calibrationTaps) {
    if (options.target != "cpu" || options.emit != EmitKind::Artifact ||
        options.activations != mlir::kiln::ActivationPrecision::F32)
      return fail("--calibration-taps makes a CPU artifact (--emit=kiln) "
                  "with --activations=f32");
    llvm::Expected<llvm::json::Array> planned =
        planCalibrationTaps(module, options);
    if (!planned)
      return planned.takeError();
    taps = std::move(*planned);
  }

  // Weights: the bytes of every tensor the graph uses (and the blobs passes
  // wrote), one section.
  report(options, "packing weights", 0.1);
  if (auto e = packForKernels(module, options))
    return e;
  llvm::Expected<std::string> weights =
      gatherWeightSection(module, options.input);
  if (!weights)
    return weights.takeError();

  if (options.target == "cuda" && !writesArtifact(options.emit))
    return emitCuda(module, options);
  if (!writesArtifact(options.emit)) {
    report(options, "lowering", 0.2);
    if (auto e = lowerToLLVM(module, options, singleVariantKernels(options)))
      return e;
    if (options.emit == EmitKind::LLVMMLIR)
      return writeOutput(options.output, printModule(module));
    return emitSingleVariant(module, options);
  }

  ArtifactBuilder builder;
  llvm::json::Array hosts;
  uint64_t commonFeatures = ~uint64_t(0);
  IntegerAttr scratch;
  std::vector<std::string> steps = stepFunctionNames(options);
  std::vector<IntegerAttr> stepScratch(steps.size());
  IntegerAttr batchScratch; // forward_batch's, with --batched-step
  std::optional<llvm::json::Object> cuda;
  // CUDA: one host step (it only launches kernels) for the baseline CPU
  // variant, and the kernels' images.
  llvm::ArrayRef<CpuTarget> targets = getCpuTargets();
  if (options.target == "cuda") {
    report(options, "lowering to CUDA", 0.2);
    llvm::Expected<CudaCode> code =
        lowerToCuda(module, options.mlirMaxTokens,
                    mlir::kiln::activationBits(options.activations),
                    /*withCubins=*/true);
    if (!code)
      return fail(options.input + ": " + llvm::toString(code.takeError()));
    scratch = IntegerAttr::get(IntegerType::get(&ctx, 64), code->scratchBytes);
    llvm::json::Array kernels, images;
    for (const std::string &k : code->kernels)
      kernels.push_back(k);
    std::string archs;
    for (CudaImage &image : code->images) {
      std::string section = image.format + "." + image.arch;
      builder.addSection(section,
                         image.format == "ptx" ? KILN_SECTION_PTX
                                               : KILN_SECTION_CUBIN,
                         std::move(image.bytes));
      images.push_back(llvm::json::Object{{"format", image.format},
                                          {"arch", image.arch},
                                          {"section", section}});
      if (llvm::StringRef(archs).find(image.arch) == llvm::StringRef::npos)
        archs += (archs.empty() ? "" : ",") + image.arch;
    }
    builder.setGpuArchs(archs);
    cuda = llvm::json::Object{{"kernels", std::move(kernels)},
                              {"images", std::move(images)}};
    const CpuTarget &host = targets.back();
    report(options, "code generation " + host.name, 0.6);
    llvm::Expected<std::string> so = emitSharedObject(module, host);
    if (!so)
      return so.takeError();
    std::string section = "host." + host.name;
    builder.addSection(section, KILN_SECTION_HOST_CODE, std::move(*so));
    llvm::json::Array features;
    commonFeatures = 0;
    for (const std::string &f : host.runtimeFeatures) {
      features.push_back(f);
      commonFeatures |= cpuFeatureFromName(f.c_str());
    }
    hosts.push_back(llvm::json::Object{{"section", section},
                                       {"cpu_features", std::move(features)}});
    targets = {};
  }
  // Each CPU variant gets kernels for its own instruction set: lowered here
  // (the diagnostics of one pass manager at a time), then compiled by LLVM
  // on a thread each (below).
  SmallVector<OwningOpRef<ModuleOp>> variants;
  for (auto [i, target] : llvm::enumerate(targets)) {
    report(options, "lowering " + target.name,
           0.2 + 0.3 * double(i) / targets.size());
    OwningOpRef<ModuleOp> variant = module.clone();
    if (auto e = lowerToLLVM(*variant, options, target.name))
      return e;
    for (auto [step, stepBytes] : llvm::zip(steps, stepScratch)) {
      auto forward = variant->lookupSymbol<LLVM::LLVMFuncOp>(step);
      auto bytes =
          forward ? forward->getAttrOfType<IntegerAttr>(
                        mlir::kiln::KilnDialect::ScratchBytesAttrHelper::getNameStr())
                  : IntegerAttr();
      if (!bytes || (stepBytes && bytes != stepBytes))
        return fail(options.input + ": the lowered module has no " + step +
                    " step with one scratch size (a compiler bug)");
      stepBytes = bytes;
    }
    scratch = stepScratch.front();
    if (options.batchedStep) {
      auto batch = variant->lookupSymbol<LLVM::LLVMFuncOp>("forward_batch");
      auto bytes =
          batch ? batch->getAttrOfType<IntegerAttr>(
                      mlir::kiln::KilnDialect::ScratchBytesAttrHelper::getNameStr())
                : IntegerAttr();
      if (!bytes || (batchScratch && bytes != batchScratch))
        return fail(options.input + ": the lowered module has no "
                                    "forward_batch step with one scratch size "
                                    "(a compiler bug)");
      batchScratch = bytes;
    }
    variants.push_back(std::move(variant));
  }
  report(options, "code generation", 0.5);
  // Translation uses the (single-threaded) MLIR context: one variant after
  // the other; LLVM's O3, code generation and link on a thread each.
  SmallVector<std::future<llvm::Expected<std::string>>> objects;
  for (size_t i = 0; i < variants.size(); ++i) {
    llvm::Expected<HostModule> host = translateForHost(*variants[i], targets[i]);
    if (!host) {
      for (auto &started : objects)
        llvm::consumeError(started.get().takeError());
      return host.takeError();
    }
    objects.push_back(std::async(std::launch::async,
                                 [host = std::move(*host)]() mutable {
                                   return compileSharedObject(std::move(host));
                                 }));
  }
  for (auto [i, target] : llvm::enumerate(targets)) {
    llvm::Expected<std::string> so = objects[i].get();
    if (!so) {
      for (auto &rest : llvm::drop_begin(objects, i + 1))
        llvm::consumeError(rest.get().takeError());
      return so.takeError();
    }
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
      {"entry", llvm::json::Object{{"symbol", "_mlir_ciface_" + steps.front()},
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
      {"targets", llvm::json::Array{cuda ? "cuda" : "cpu"}},
  };
  if (cuda)
    manifest["cuda"] = std::move(*cuda);
  if (batchScratch)
    manifest["batch_entry"] =
        llvm::json::Object{{"symbol", "_mlir_ciface_forward_batch"},
                           {"scratch_bytes", batchScratch.getInt()}};
  if (taps)
    manifest["taps"] = std::move(*taps);
  if (steps.size() > 1) {
    llvm::json::Array ranks;
    for (auto [step, bytes] : llvm::zip(steps, stepScratch))
      ranks.push_back(llvm::json::Object{{"symbol", "_mlir_ciface_" + step},
                                         {"scratch_bytes", bytes.getInt()}});
    manifest["distribution"] =
        llvm::json::Object{{"tp", options.tensorParallel},
                           {"pp", options.pipelineParallel},
                           {"ranks", std::move(ranks)}};
  }
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
  bool written =
      options.emit == EmitKind::Executable
          ? writeExecutable(options.output, options.executableStub, builder,
                            err)
          : writeArtifact(options.output, builder, err);
  if (!written)
    return fail(err);
  report(options, "done", 1.0);
  return llvm::Error::success();
}

ImportOptions importOptionsOf(const CompileOptions &options) {
  ImportOptions importOptions;
  importOptions.contextLength = options.contextLength;
  importOptions.maxTokens = options.maxTokens;
  importOptions.batchedStep = options.batchedStep;
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
                         files, &*file, options);
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
      /*ggufFile=*/nullptr, options);
}

} // namespace

llvm::Expected<LoweredMLIR> lowerMLIRModule(ModuleOp module,
                                            const CompileOptions &options,
                                            bool withWeights) {
  LoweredMLIR lowered;
  if (withWeights) {
    if (auto e = packForKernels(module, options))
      return std::move(e);
    llvm::Expected<std::string> section =
        gatherWeightSection(module, options.input);
    if (!section)
      return section.takeError();
    lowered.weights = std::move(*section);
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
                    " is invalid (activations=int2..int8|f32)");
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
    } else if (key == "unstructured") {
      std::optional<mlir::kiln::UnstructuredStorage> storage =
          mlir::kiln::parseUnstructuredStorage(value);
      if (!storage)
        return fail("pipeline option " + word +
                    " is invalid (unstructured=auto|bitmap|dense)");
      options.unstructured = *storage;
    } else {
      return fail("unknown pipeline option '" + key +
                  "' (known: activations, max-tokens, cpu, unstructured)");
    }
  }
  return llvm::Error::success();
}

bool parseEmitKind(llvm::StringRef text, EmitKind &kind) {
  static const std::pair<llvm::StringRef, EmitKind> kinds[] = {
      {"kiln", EmitKind::Artifact},  {"exe", EmitKind::Executable},
      {"mlir", EmitKind::KilnMLIR},
      {"llvm-mlir", EmitKind::LLVMMLIR}, {"llvm", EmitKind::LLVMIR},
      {"asm", EmitKind::Assembly},   {"so", EmitKind::SharedObject},
      {"ptx", EmitKind::PTX},        {"gguf", EmitKind::GGUF}};
  for (auto [name, k] : kinds)
    if (text == name) {
      kind = k;
      return true;
    }
  return false;
}

llvm::Error compile(const CompileOptions &options) {
  if (options.target != "cpu" && options.target != "cuda")
    return fail("--target=" + options.target +
                " is not available yet (supported: cpu, cuda)");
  if (options.emit == EmitKind::PTX && options.target != "cuda")
    return fail("--emit=ptx needs --target=cuda");
  if (options.target == "cuda" &&
      (options.emit == EmitKind::LLVMIR || options.emit == EmitKind::Assembly ||
       options.emit == EmitKind::SharedObject))
    return fail("--target=cuda emits kiln (an artifact), exe, mlir, "
                "llvm-mlir or ptx");
  if (options.output.empty())
    return fail("no output file given (-o)");
  if (options.kernels != "native" && options.kernels != "generic")
    return fail("--kernels=" + options.kernels + " is not one of native, generic");
  // Checked before the (possibly long) compile.
  if (options.emit == EmitKind::Executable &&
      !llvm::sys::fs::exists(options.executableStub))
    return fail("--emit=exe needs the runtime program kiln-exe-stub, which is "
                "missing" +
                (options.executableStub.empty()
                     ? std::string(" (no path given)")
                     : " at '" + options.executableStub + "'") +
                ": build or install it next to kiln-compile");
  if (options.batchedStep &&
      (options.target != "cpu" || rankCount(options) != 1 ||
       !llvm::StringRef(options.input).ends_with(".gguf")))
    return fail("--batched-step needs a .gguf decoder on --target=cpu "
                "without --tp/--pp");
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
