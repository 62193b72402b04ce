//===- ModelImporter.cpp - GGUF model to a kiln module --------------------===//
//
// Metadata keys and tensor names follow the GGUF spec (ggml docs/gguf.md):
// `<arch>.block_count`, `<arch>.attention.head_count`, `blk.N.attn_q.weight`.
//
//===----------------------------------------------------------------------===//

#include "Import/ModelImporter.h"
#include "Import/TokenizerJSON.h"

#include "Kiln/IR/GGMLFormats.h"
#include "Kiln/IR/KilnDialect.h"
#include "Kiln/IR/WeightLayout.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <algorithm>
#include <cmath>
#include <cstring>

using namespace mlir;
using mlir::kiln::QuantLayout;
using mlir::kiln::QuantSchemeAttr;
using mlir::kiln::WeightType;

namespace kiln {

static llvm::Error fail(llvm::StringRef path, const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 path + ": " + what);
}

static llvm::Error fail(const gguf::GGUFFile &file, const llvm::Twine &what) {
  return fail(file.path(), what);
}

llvm::ArrayRef<llvm::StringRef> getSupportedArchitectures() {
  static const llvm::StringRef archs[] = {"llama",   "qwen2", "qwen3",
                                          "mistral", "phi3",  "gemma3"};
  return archs;
}

llvm::Expected<Type> getWeightType(MLIRContext &ctx,
                                         const gguf::TensorInfo &tensor) {
  auto err = [&](const llvm::Twine &msg) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "tensor '" + tensor.name + "': " + msg);
  };
  SmallVector<int64_t> shape;
  for (uint64_t d : llvm::reverse(tensor.dims)) {
    if (d == 0 || d > uint64_t(INT64_MAX))
      return err("dimension out of range");
    shape.push_back(int64_t(d));
  }
  Builder b(&ctx);
  Type f16 = b.getF16Type();
  QuantSchemeAttr quant;
  Type element;
  const GGMLFormat *format = findGGMLFormat(uint32_t(tensor.type));
  if (format && format->isQuantScheme()) {
    quant = QuantSchemeAttr::get(&ctx, format->bits, format->group, f16,
                                 format->hasMin ? f16 : Type(),
                                 format->superGroup, format->subScaleBits,
                                 QuantLayout::GGUF,
                                 mlir::kiln::QuantCodebook(
                                     uint32_t(format->codebook)));
  } else if (tensor.type == GGMLType::F32) {
    element = b.getF32Type();
  } else if (tensor.type == GGMLType::F16) {
    element = f16;
  } else if (tensor.type == GGMLType::BF16) {
    element = b.getBF16Type();
  } else {
    return err(llvm::Twine("tensor type ") +
               (format ? format->name : "unknown") +
               " is not supported by Kiln");
  }
  std::string diag;
  auto type = WeightType::getChecked(
      [&]() {
        return emitError(UnknownLoc::get(&ctx));
      },
      &ctx, ArrayRef<int64_t>(shape), element, quant,
      mlir::kiln::SparsityAttr());
  if (!type)
    return err("shape does not fit its encoding");
  FailureOr<uint64_t> bytes = type.getStorageBytes();
  if (failed(bytes) || *bytes != tensor.byteSize)
    return err("byte size does not match its shape and type");
  return Type(type);
}

namespace {

/// The hyperparameters of a decoder, whichever file format they came from.
struct DecoderConfig {
  ModelInfo info;
  float epsilon = 1e-5f, ropeBase = 10000.0f, ropeScale = 1.0f;
  int64_t rotaryDim = 0;
  bool neoxRope = false;
  /// Long-context RoPE scaling (Llama 3's frequency factors, YaRN): each
  /// frequency's angle multiplier (empty: none) and the rotation's magnitude.
  std::vector<float> ropeFactors;
  float ropeMagnitude = 1.0f;
  /// An RMS norm on each head of q and k before RoPE (Qwen3, Gemma 3).
  bool qkNorm = false;
  /// Phi-3: q/k/v in one projection (`attn_qkv`) and gate/up in one
  /// (`ffn_up`, gate rows first); the importer splits them by rows.
  bool fusedProjections = false;
  /// Gemma 3: post-norms, GeGLU, scaled embeddings, and sliding-window
  /// layers with their own rope base.
  bool gemma3 = false;
  int64_t slidingWindow = 0, swaPattern = 0;
  float swaRopeBase = 10000.0f, attentionScale = 0.0f;
};

/// A weight's type and the byte range of a file holding it.
struct SourceTensor {
  WeightType type;
  std::string path;
  uint64_t offset, size;
};

/// The weights of a model by their GGUF names (`blk.0.attn_q.weight`): the
/// graph builder's one view of a GGUF file or a safetensors checkpoint.
class TensorSource {
public:
  virtual ~TensorSource() = default;
  /// The file that errors name.
  virtual StringRef path() const = 0;
  /// The name the file itself uses for GGUF name `name`.
  virtual std::string fileName(StringRef name) const { return name.str(); }
  /// Tensor `name`, std::nullopt when the file does not have it.
  virtual llvm::Expected<std::optional<SourceTensor>>
  find(MLIRContext &ctx, StringRef name) const = 0;
};

class GGUFTensors : public TensorSource {
public:
  explicit GGUFTensors(const gguf::GGUFFile &file) : file(file) {}
  StringRef path() const override { return file.path(); }
  llvm::Expected<std::optional<SourceTensor>>
  find(MLIRContext &ctx, StringRef name) const override {
    const gguf::TensorInfo *tensor = file.findTensor(name);
    if (!tensor)
      return std::nullopt;
    auto type = getWeightType(ctx, *tensor);
    if (!type)
      return fail(file, llvm::toString(type.takeError()));
    return SourceTensor{cast<WeightType>(*type), file.path().str(),
                        tensor->fileOffset, tensor->byteSize};
  }

private:
  const gguf::GGUFFile &file;
};

/// A Hugging Face checkpoint's tensors under their GGUF names.
class SafetensorsTensors : public TensorSource {
public:
  explicit SafetensorsTensors(const safetensors::Checkpoint &checkpoint)
      : checkpoint(checkpoint) {}
  StringRef path() const override {
    return checkpoint.shards.front().path();
  }

  using NameMap = ArrayRef<std::pair<StringRef, StringRef>>;

  /// Hugging Face's name for a GGUF tensor name (llama.cpp's
  /// gguf-py/gguf/tensor_mapping.py, read backwards), "" for none.
  std::string fileName(StringRef name) const override {
    if (checkpoint.bert) {
      // llama.cpp's BERT names: token_types, token_embd_norm, ...
      static const std::pair<StringRef, StringRef> global[] = {
          {"token_embd", "embeddings.word_embeddings"},
          {"position_embd", "embeddings.position_embeddings"},
          {"token_types", "embeddings.token_type_embeddings"},
          {"token_embd_norm", "embeddings.LayerNorm"}};
      static const std::pair<StringRef, StringRef> perLayer[] = {
          {"attn_q", "attention.self.query"},
          {"attn_k", "attention.self.key"},
          {"attn_v", "attention.self.value"},
          {"attn_output", "attention.output.dense"},
          {"attn_output_norm", "attention.output.LayerNorm"},
          {"ffn_up", "intermediate.dense"},
          {"ffn_down", "output.dense"},
          {"layer_output_norm", "output.LayerNorm"}};
      return mapName(name, global, "encoder.layer.", perLayer);
    }
    static const std::pair<StringRef, StringRef> global[] = {
        {"token_embd", "model.embed_tokens"},
        {"output_norm", "model.norm"},
        {"output", "lm_head"}};
    static const std::pair<StringRef, StringRef> perLayer[] = {
        {"attn_norm", "input_layernorm"},
        {"attn_q", "self_attn.q_proj"},
        {"attn_k", "self_attn.k_proj"},
        {"attn_v", "self_attn.v_proj"},
        {"attn_output", "self_attn.o_proj"},
        {"attn_q_norm", "self_attn.q_norm"},
        {"attn_k_norm", "self_attn.k_norm"},
        {"ffn_norm", "post_attention_layernorm"},
        {"ffn_gate", "mlp.gate_proj"},
        {"ffn_up", "mlp.up_proj"},
        {"ffn_down", "mlp.down_proj"}};
    return mapName(name, global, "model.layers.", perLayer);
  }

  /// `name` (GGUF's `stem[.weight|.bias]` or `blk.N.part[...]`) through the
  /// tables: a `global` stem, or `layerPrefix` N. and a `perLayer` part.
  static std::string mapName(StringRef name, NameMap global,
                             StringRef layerPrefix, NameMap perLayer) {
    StringRef stem = name, suffix;
    if (name.ends_with(".weight") || name.ends_with(".bias")) {
      size_t dot = name.rfind('.');
      stem = name.take_front(dot);
      suffix = name.drop_front(dot);
    }
    for (auto [gguf, hf] : global)
      if (stem == gguf)
        return (hf + suffix).str();
    if (!stem.consume_front("blk."))
      return "";
    auto [layer, part] = stem.split('.');
    for (auto [gguf, hf] : perLayer)
      if (part == gguf && !layer.empty())
        return (layerPrefix + layer + "." + hf + suffix).str();
    return "";
  }

  llvm::Expected<std::optional<SourceTensor>>
  find(MLIRContext &ctx, StringRef name) const override {
    // Tied embeddings: the head is the table, whatever else the file holds.
    if (name == "output.weight" && checkpoint.config.tieWordEmbeddings)
      return std::nullopt;
    std::string hfName = fileName(name);
    auto [tensor, shard] = checkpoint.findTensor(hfName);
    if (!tensor)
      return std::nullopt;
    Builder b(&ctx);
    Type element;
    switch (tensor->dtype) {
    case safetensors::DType::F32:
      element = b.getF32Type();
      break;
    case safetensors::DType::F16:
      element = b.getF16Type();
      break;
    case safetensors::DType::BF16:
      element = b.getBF16Type();
      break;
    default:
      return fail(shard->path(),
                  "tensor '" + hfName + "': dtype " +
                      safetensors::getDTypeName(tensor->dtype) +
                      " is not supported (F32, F16, BF16)");
    }
    SmallVector<int64_t> shape;
    for (uint64_t d : tensor->shape) {
      if (d == 0 || d > uint64_t(INT64_MAX))
        return fail(shard->path(),
                    "tensor '" + hfName + "': dimension out of range");
      shape.push_back(int64_t(d));
    }
    auto type = WeightType::getChecked(
        [&]() { return emitError(UnknownLoc::get(&ctx)); }, &ctx,
        ArrayRef<int64_t>(shape), element, QuantSchemeAttr(),
        mlir::kiln::SparsityAttr());
    if (!type)
      return fail(shard->path(), "tensor '" + hfName +
                                     "': shape does not fit its encoding");
    return SourceTensor{type, shard->path().str(), tensor->fileOffset,
                        tensor->byteSize()};
  }

private:
  const safetensors::Checkpoint &checkpoint;
};

/// What the graph builders share: the weights and the builder.
class GraphBuilder {
protected:
  GraphBuilder(MLIRContext &ctx, const TensorSource &tensors,
               const ImportOptions &options)
      : ctx(ctx), tensors(tensors), options(options), b(&ctx) {}

  /// A kiln.weight for tensor `name` checked against `shape` ([N, K] or [N]).
  llvm::Expected<Value> weight(StringRef name, ArrayRef<int64_t> shape);
  /// As weight(), or a null Value when the tensor is absent.
  llvm::Expected<Value> optionalWeight(StringRef name, ArrayRef<int64_t> shape);
  /// Rows [first, first + count) of the [N, K] tensor `name` as a weight of
  /// its own (a byte range of the file): one part of a fused projection.
  llvm::Expected<Value> weightRows(StringRef name, ArrayRef<int64_t> shape,
                                   StringRef part, int64_t first,
                                   int64_t count);

  MLIRContext &ctx;
  const TensorSource &tensors;
  const ImportOptions &options;
  OpBuilder b;
};

/// Builds the forward step of a decoder from its config and weights.
class DecoderBuilder : DecoderConfig, GraphBuilder {
public:
  DecoderBuilder(MLIRContext &ctx, const DecoderConfig &config,
                 const TensorSource &tensors, const ImportOptions &options)
      : DecoderConfig(config), GraphBuilder(ctx, tensors, options) {}

  llvm::Expected<OwningOpRef<ModuleOp>> build();

private:
  /// Builds step function `name`: over one sequence's tokens from a first
  /// position, or with `batched`, over tokens of several sequences, each
  /// with its KV-cache slot and position.
  llvm::Error buildStep(StringRef name, bool batched);
};

/// Builds the step function of a BERT encoder: its sentence embedding.
class EncoderBuilder : GraphBuilder {
public:
  EncoderBuilder(MLIRContext &ctx, const safetensors::BertConfig &config,
                 const ModelInfo &info, const TensorSource &tensors,
                 const ImportOptions &options)
      : GraphBuilder(ctx, tensors, options), config(config), info(info) {}

  llvm::Expected<OwningOpRef<ModuleOp>> build();

private:
  const safetensors::BertConfig &config;
  const ModelInfo &info;
};

/// Reads a GGUF file's hyperparameters and vocabulary.
class Importer : DecoderConfig {
public:
  Importer(MLIRContext &ctx, const gguf::GGUFFile &file,
           const ImportOptions &options)
      : ctx(ctx), file(file), options(options) {}

  llvm::Expected<ImportedModel> run();

private:
  llvm::Error readHyperparameters();
  llvm::Error readGemma3Hyperparameters();
  llvm::Error readRopeScaling(
      llvm::function_ref<llvm::Error(StringRef, float &, bool)> readFloat);
  llvm::Expected<std::string> buildVocabulary();
  llvm::Expected<uint64_t> arch(StringRef key) {
    return file.getUInt((info.arch + "." + key).str());
  }

  MLIRContext &ctx;
  const gguf::GGUFFile &file;
  const ImportOptions &options;
};

/// Picks the KV cache length and checks the limits every decoder shares.
llvm::Error chooseContext(DecoderConfig &config, const ImportOptions &options,
                          StringRef path) {
  ModelInfo &info = config.info;
  info.context = options.contextLength
                     ? options.contextLength
                     : std::min<int64_t>(info.trainedContext, 4096);
  if (info.context <= 0 || info.context > (int64_t(1) << 24))
    return fail(path, "context length " + llvm::Twine(info.context) +
                          " is out of range [1, 16777216]");
  if (options.maxTokens <= 0 || options.maxTokens > 4096)
    return fail(path, "max tokens per step " + llvm::Twine(options.maxTokens) +
                          " is out of range [1, 4096]");
  // The KV cache must fit in memory: refuse what no machine here could hold.
  int64_t dims[] = {2, info.layers, info.context, info.kvHeads, info.headDim, 4};
  std::optional<uint64_t> cacheBytes = checkedElementCount(dims);
  constexpr uint64_t kMaxCacheBytes = uint64_t(64) << 30;
  if (!cacheBytes || *cacheBytes > kMaxCacheBytes)
    return fail(path, "a KV cache for " + llvm::Twine(info.context) +
                          " positions would need more than 64 GiB; choose a "
                          "smaller --ctx");
  return llvm::Error::success();
}

} // namespace

llvm::Error Importer::readHyperparameters() {
  auto archName = file.getString("general.architecture");
  if (!archName)
    return archName.takeError();
  info.arch = archName->str();
  if (!llvm::is_contained(getSupportedArchitectures(), *archName))
    return fail(file, "general.architecture '" + info.arch +
                          "' is not supported (supported: " +
                          llvm::join(getSupportedArchitectures(), ", ") + ")");
  if (auto name = file.getString("general.name"))
    info.name = name->str();
  else
    llvm::consumeError(name.takeError());
  gemma3 = info.arch == "gemma3";
  // Qwen, Phi-3 and Gemma rotate halves (NeoX style); Llama's GGUF Q/K are
  // permuted for adjacent pairs.
  neoxRope = info.arch == "qwen2" || info.arch == "qwen3" ||
             info.arch == "phi3" || gemma3;
  qkNorm = info.arch == "qwen3" || gemma3;
  fusedProjections = info.arch == "phi3";

  auto readDim = [&](StringRef key, int64_t &out, uint64_t limit) -> llvm::Error {
    auto v = arch(key);
    if (!v)
      return v.takeError();
    if (*v == 0 || *v > limit)
      return fail(file, info.arch + "." + key + " = " + llvm::Twine(*v) +
                            " is out of range [1, " + llvm::Twine(limit) + "]");
    out = int64_t(*v);
    return llvm::Error::success();
  };
  constexpr uint64_t kMaxDim = 1u << 20;
  if (auto e = readDim("block_count", info.layers, 4096))
    return e;
  if (auto e = readDim("embedding_length", info.embedding, kMaxDim))
    return e;
  if (auto e = readDim("feed_forward_length", info.feedForward, kMaxDim))
    return e;
  if (auto e = readDim("attention.head_count", info.heads, 4096))
    return e;
  if (auto e = readDim("context_length", info.trainedContext, 1ull << 24))
    return e;
  if (file.find(info.arch + ".attention.head_count_kv")) {
    if (auto e = readDim("attention.head_count_kv", info.kvHeads, 4096))
      return e;
  } else {
    info.kvHeads = info.heads;
  }
  if (info.heads % info.kvHeads != 0)
    return fail(file, info.arch + ".attention.head_count " +
                          llvm::Twine(info.heads) +
                          " is not a multiple of head_count_kv " +
                          llvm::Twine(info.kvHeads));
  if (file.find(info.arch + ".attention.key_length")) {
    if (auto e = readDim("attention.key_length", info.headDim, 65536))
      return e;
  } else {
    if (info.embedding % info.heads != 0)
      return fail(file, info.arch + ".embedding_length " +
                            llvm::Twine(info.embedding) +
                            " is not a multiple of head_count " +
                            llvm::Twine(info.heads));
    info.headDim = info.embedding / info.heads;
  }
  rotaryDim = info.headDim;
  if (file.find(info.arch + ".rope.dimension_count"))
    if (auto e = readDim("rope.dimension_count", rotaryDim, info.headDim))
      return e;
  if (rotaryDim % 2 != 0)
    return fail(file, info.arch + ".rope.dimension_count must be even");
  auto readFloat = [&](StringRef key, float &out, bool required) -> llvm::Error {
    std::string full = (info.arch + "." + key).str();
    if (!file.find(full) && !required)
      return llvm::Error::success();
    auto v = file.getFloat(full);
    if (!v)
      return v.takeError();
    // Checked as the f32 the graph will hold: a tiny f64 rounds to 0.
    float f = float(*v);
    if (!(f > 0.0f) || !std::isfinite(f))
      return fail(file, full + " must be a positive finite f32 number");
    out = f;
    return llvm::Error::success();
  };
  if (auto e = readFloat("attention.layer_norm_rms_epsilon", epsilon, true))
    return e;
  if (auto e = readFloat("rope.freq_base", ropeBase, false))
    return e;
  if (auto e = readRopeScaling(readFloat))
    return e;

  attentionScale = 1.0f / std::sqrt(float(info.headDim));
  if (gemma3) {
    if (auto e = readGemma3Hyperparameters())
      return e;
  }

  auto vocab = file.getStringArray("tokenizer.ggml.tokens");
  if (!vocab)
    return vocab.takeError();
  info.vocab = int64_t(vocab->size());
  if (info.vocab == 0)
    return fail(file, "tokenizer.ggml.tokens is empty");

  return chooseContext(*this, options, file.path());
}

/// GGUF's RoPE scalings as llama.cpp reads them (llama-model.cpp,
/// llama-context.cpp, ggml's rope_yarn): linear divides every angle by
/// `rope.scaling.factor`; Llama 3.1's `rope_freqs` tensor divides each
/// frequency's angle by its own factor; YaRN ramps from interpolated (low)
/// to extrapolated (high) frequencies between the correction dims of beta
/// fast = 32 and slow = 1 (llama.cpp's values for these architectures) and
/// scales the rotation by 1 + 0.1 ln(factor); `rope.scaling.attn_factor`
/// scales it further.
llvm::Error Importer::readRopeScaling(
    llvm::function_ref<llvm::Error(StringRef, float &, bool)> readFloat) {
  std::string type = "linear"; // llama.cpp's default when the key is absent
  if (auto t = file.getString(info.arch + ".rope.scaling.type"))
    type = t->str();
  else
    llvm::consumeError(t.takeError());
  if (type != "none" && type != "linear" && type != "yarn")
    return fail(file, info.arch + ".rope.scaling.type '" + type +
                          "' is not supported (none, linear, yarn)");
  float factor = 1.0f;
  if (type != "none")
    if (auto e = readFloat("rope.scaling.factor", factor, false))
      return e;
  ropeScale = 1.0f / factor;
  if (!std::isfinite(ropeScale))
    return fail(file, info.arch + ".rope.scaling.factor is too small: its "
                                  "inverse overflows f32");
  if (auto e = readFloat("rope.scaling.attn_factor", ropeMagnitude, false))
    return e;
  int64_t half = rotaryDim / 2;
  for (StringRef longRope :
       {"rope_factors_long.weight", "rope_factors_short.weight"})
    if (file.findTensor(longRope))
      return fail(file, "tensor '" + longRope +
                            "': Phi-3 LongRoPE scaling is not supported");
  std::vector<float> divisors(half, 1.0f);
  if (const gguf::TensorInfo *freqs = file.findTensor("rope_freqs.weight")) {
    if (freqs->type != GGMLType::F32 || freqs->dims.size() != 1 ||
        freqs->dims[0] != uint64_t(half))
      return fail(file, "tensor 'rope_freqs.weight' must be F32 with " +
                            llvm::Twine(half) +
                            " values (rope.dimension_count / 2)");
    ArrayRef<uint8_t> bytes = file.tensorData(*freqs);
    for (int64_t i = 0; i < half; ++i) {
      std::memcpy(&divisors[i], bytes.data() + 4 * i, 4);
      if (!(divisors[i] > 0.0f) || !std::isfinite(divisors[i]))
        return fail(file, "tensor 'rope_freqs.weight' must hold positive "
                          "finite values");
    }
  }
  bool yarn = type == "yarn" && factor != 1.0f;
  if (!yarn && !file.findTensor("rope_freqs.weight"))
    return llvm::Error::success();
  // From here every scaling is one angle multiplier per frequency.
  float freqScale = ropeScale;
  ropeScale = 1.0f;
  ropeFactors.resize(half);
  float low = 0.0f, high = 0.0f;
  if (yarn) {
    int64_t originalContext = info.trainedContext;
    std::string key = info.arch + ".rope.scaling.original_context_length";
    if (file.find(key)) {
      auto v = file.getUInt(key);
      if (!v)
        return v.takeError();
      if (*v == 0 || *v > (1u << 24))
        return fail(file, key + " = " + llvm::Twine(*v) +
                              " is out of range [1, 16777216]");
      originalContext = int64_t(*v);
    }
    // ggml_rope_yarn_corr_dims, in f32 as ggml computes it.
    auto corrDim = [&](float rotations) {
      return float(rotaryDim) *
             std::log(float(originalContext) /
                      (rotations * 2.0f * float(M_PI))) /
             (2.0f * std::log(ropeBase));
    };
    low = std::max(0.0f, std::floor(corrDim(32.0f)));
    high = std::min(float(rotaryDim - 1), std::ceil(corrDim(1.0f)));
    if (factor > 1.0f)
      ropeMagnitude *= 1.0f + 0.1f * std::log(factor);
    if (!std::isfinite(ropeMagnitude))
      return fail(file, info.arch + ".rope.scaling.attn_factor times YaRN's "
                                    "magnitude overflows f32");
  }
  for (int64_t i = 0; i < half; ++i) {
    float multiplier = freqScale;
    if (yarn) {
      float y = (float(i) - low) / std::max(0.001f, high - low);
      float extrapolated = 1.0f - std::min(1.0f, std::max(0.0f, y));
      multiplier = freqScale * (1.0f - extrapolated) + extrapolated;
    }
    ropeFactors[i] = multiplier / divisors[i];
    // Each input may be in range and their quotient still overflow (a
    // subnormal divisor): the rope op takes positive finite factors only.
    if (!(ropeFactors[i] > 0.0f) || !std::isfinite(ropeFactors[i]))
      return fail(file, "rope scaling: frequency " + llvm::Twine(i) +
                            "'s angle multiplier is not a positive finite "
                            "number (rope.scaling.factor, rope_freqs)");
  }
  return llvm::Error::success();
}

llvm::Error Importer::readGemma3Hyperparameters() {
  auto optionalUInt = [&](StringRef key, int64_t &out,
                          uint64_t limit) -> llvm::Error {
    std::string full = (info.arch + "." + key).str();
    if (!file.find(full))
      return llvm::Error::success();
    auto v = file.getUInt(full);
    if (!v)
      return v.takeError();
    if (*v > limit)
      return fail(file, full + " = " + llvm::Twine(*v) +
                            " is out of range [0, " + llvm::Twine(limit) + "]");
    out = int64_t(*v);
    return llvm::Error::success();
  };
  if (auto e = optionalUInt("attention.sliding_window", slidingWindow,
                            1u << 24))
    return e;
  // Every sixth layer is global, the others slide (Gemma 3 report, sec. 2.1);
  // GGUF files of Gemma 3 leave the pattern and the local rope base out.
  swaPattern = 6;
  if (auto e = optionalUInt("attention.sliding_window_pattern", swaPattern,
                            4096))
    return e;
  if (swaPattern == 0)
    return fail(file, info.arch +
                          ".attention.sliding_window_pattern must be positive");
  std::string swaBaseKey = info.arch + ".rope.freq_base_swa";
  if (file.find(swaBaseKey)) {
    auto v = file.getFloat(swaBaseKey);
    if (!v)
      return v.takeError();
    if (!(*v > 0.0) || !std::isfinite(*v))
      return fail(file, swaBaseKey + " must be a positive finite number");
    swaRopeBase = float(*v);
  }
  // A capped output head (Gemma 2 style) has no kiln op; 0 means no cap.
  std::string softcapKey = info.arch + ".final_logit_softcapping";
  if (file.find(softcapKey)) {
    auto v = file.getFloat(softcapKey);
    if (!v)
      return v.takeError();
    if (*v != 0.0)
      return fail(file, softcapKey + " is not supported");
  }
  // Gemma 3 27B scales queries by 1/sqrt(embedding / heads) rather than
  // 1/sqrt(head_dim) (query_pre_attn_scalar in gemma_pytorch's config.py).
  if (info.layers == 62)
    attentionScale = 1.0f / std::sqrt(float(info.embedding / info.heads));
  return llvm::Error::success();
}

llvm::Expected<Value> GraphBuilder::optionalWeight(StringRef name,
                                                   ArrayRef<int64_t> shape) {
  auto tensor = tensors.find(ctx, name);
  if (!tensor)
    return tensor.takeError();
  if (!*tensor)
    return Value();
  return weight(name, shape);
}

llvm::Expected<Value> GraphBuilder::weight(StringRef name,
                                           ArrayRef<int64_t> shape) {
  return weightRows(name, shape, "", 0, shape[0]);
}

llvm::Expected<Value> GraphBuilder::weightRows(StringRef name,
                                               ArrayRef<int64_t> shape,
                                               StringRef part, int64_t first,
                                               int64_t count) {
  auto tensor = tensors.find(ctx, name);
  if (!tensor)
    return tensor.takeError();
  if (!*tensor)
    return fail(tensors.path(),
                "missing tensor '" + tensors.fileName(name) + "'");
  WeightType wt = (*tensor)->type;
  if (wt.getShape() != shape) {
    std::string got;
    for (int64_t d : wt.getShape())
      got += (got.empty() ? "" : "x") + std::to_string(d);
    std::string expected;
    for (int64_t d : shape)
      expected += (expected.empty() ? "" : "x") + std::to_string(d);
    return fail(tensors.path(), "tensor '" + tensors.fileName(name) +
                                    "' has shape " + got + ", expected " +
                                    expected +
                                    " from the model's hyperparameters");
  }
  uint64_t offset = (*tensor)->offset, size = (*tensor)->size;
  std::string locName = name.str();
  if (count != shape[0]) {
    // Each row of a ggml or safetensors matrix is whole blocks, stored one
    // after the other: a range of rows is a range of bytes.
    uint64_t rowBytes = size / uint64_t(shape[0]);
    SmallVector<int64_t> partShape(shape);
    partShape[0] = count;
    wt = WeightType::get(&ctx, partShape, wt.getElementType(), wt.getQuant(),
                         wt.getSparsity());
    FailureOr<uint64_t> partBytes = wt.getStorageBytes();
    if (failed(partBytes) || *partBytes != uint64_t(count) * rowBytes)
      return fail(tensors.path(), "tensor '" + tensors.fileName(name) +
                                      "' cannot be split by rows");
    offset += uint64_t(first) * rowBytes;
    size = *partBytes;
    locName += "[" + part.str() + "]";
  }
  auto source = mlir::kiln::ExternalDataAttr::get(
      &ctx, b.getStringAttr((*tensor)->path), offset, size);
  // The tensor's name as the location: diagnostics name it, and
  // kiln-compile --emit=gguf finds the tensor a rewritten weight came from
  // (a part of a fused tensor is named `name[part]`).
  return mlir::kiln::WeightOp::create(b, NameLoc::get(b.getStringAttr(locName)),
                                      wt, source)
      .getResult();
}

llvm::Expected<std::string> Importer::buildVocabulary() {
  llvm::json::Object vocab;
  auto model = file.getString("tokenizer.ggml.model");
  if (!model)
    return model.takeError();
  vocab["model"] = model->str();
  if (auto pre = file.getString("tokenizer.ggml.pre"))
    vocab["pre"] = pre->str();
  else {
    llvm::consumeError(pre.takeError());
    vocab["pre"] = "";
  }
  auto tokens = file.getStringArray("tokenizer.ggml.tokens");
  if (!tokens)
    return tokens.takeError();
  llvm::json::Array tokenArray;
  for (auto [i, t] : llvm::enumerate(*tokens)) {
    if (!llvm::json::isUTF8(t))
      return fail(file, "tokenizer.ggml.tokens[" + llvm::Twine(i) +
                            "] is not valid UTF-8");
    tokenArray.push_back(t);
  }
  vocab["tokens"] = std::move(tokenArray);
  size_t n = tokens->size();
  if (file.find("tokenizer.ggml.token_type")) {
    auto types = file.getIntArray("tokenizer.ggml.token_type");
    if (!types)
      return types.takeError();
    if (types->size() != n)
      return fail(file, "tokenizer.ggml.token_type has " +
                            llvm::Twine(types->size()) + " entries for " +
                            llvm::Twine(n) + " tokens");
    vocab["token_types"] = llvm::json::Array(*types);
  }
  if (file.find("tokenizer.ggml.scores")) {
    auto scores = file.getFloatArray("tokenizer.ggml.scores");
    if (!scores)
      return scores.takeError();
    if (scores->size() != n)
      return fail(file, "tokenizer.ggml.scores has " +
                            llvm::Twine(scores->size()) + " entries for " +
                            llvm::Twine(n) + " tokens");
    llvm::json::Array arr;
    for (double s : *scores)
      arr.push_back(std::isfinite(s) ? s : -1e30);
    vocab["scores"] = std::move(arr);
  }
  if (file.find("tokenizer.ggml.merges")) {
    auto merges = file.getStringArray("tokenizer.ggml.merges");
    if (!merges)
      return merges.takeError();
    // Split as llama.cpp does (at the first space after the first byte);
    // both halves and their concatenation must be tokens, or the tokenizer
    // would produce a token id that does not exist.
    llvm::StringSet<> known;
    for (const std::string &t : *tokens)
      known.insert(t);
    llvm::json::Array arr;
    for (auto [i, m] : llvm::enumerate(*merges)) {
      auto at = [i = i] {
        return ("tokenizer.ggml.merges[" + llvm::Twine(i) + "] ").str();
      };
      if (!llvm::json::isUTF8(m))
        return fail(file, at() + "is not valid UTF-8");
      size_t space = m.find(' ', 1);
      if (space == std::string::npos || space + 1 == m.size())
        return fail(file, at() + "'" + m +
                              "' is not two tokens separated by a space");
      StringRef first = StringRef(m).take_front(space),
                second = StringRef(m).drop_front(space + 1);
      for (const std::string &part :
           {first.str(), second.str(), (first + second).str()})
        if (!known.contains(part))
          return fail(file, at() + "'" + m + "' uses '" + part +
                                "', which is not in tokenizer.ggml.tokens");
      arr.push_back(m);
    }
    vocab["merges"] = std::move(arr);
  }
  for (auto [key, field] :
       {std::pair<StringRef, StringRef>{"bos_token_id", "bos_id"},
        {"eos_token_id", "eos_id"},
        {"eot_token_id", "eot_id"},
        {"unknown_token_id", "unk_id"},
        {"padding_token_id", "pad_id"}}) {
    std::string full = ("tokenizer.ggml." + key).str();
    if (!file.find(full)) {
      vocab[field] = nullptr;
      continue;
    }
    auto id = file.getUInt(full);
    if (!id)
      return id.takeError();
    if (*id >= n)
      return fail(file, full + " = " + llvm::Twine(*id) +
                            " is not below the vocabulary size " +
                            llvm::Twine(n));
    vocab[field] = int64_t(*id);
  }
  for (auto [key, field] : {std::pair<StringRef, StringRef>{"add_bos_token", "add_bos"},
                            {"add_eos_token", "add_eos"},
                            {"add_space_prefix", "add_space_prefix"}}) {
    std::string full = ("tokenizer.ggml." + key).str();
    if (!file.find(full))
      continue;
    auto v = file.getBool(full);
    if (!v)
      return v.takeError();
    vocab[field] = *v;
  }
  if (file.find("tokenizer.chat_template")) {
    auto tmpl = file.getString("tokenizer.chat_template");
    if (!tmpl)
      return tmpl.takeError();
    if (!llvm::json::isUTF8(*tmpl))
      return fail(file, "tokenizer.chat_template is not valid UTF-8");
    vocab["chat_template"] = tmpl->str();
  } else {
    vocab["chat_template"] = "";
  }
  std::string out;
  llvm::raw_string_ostream os(out);
  os << llvm::json::Value(std::move(vocab));
  return out;
}

llvm::Expected<ImportedModel> Importer::run() {
  if (auto e = readHyperparameters())
    return std::move(e);
  auto vocabJSON = buildVocabulary();
  if (!vocabJSON)
    return vocabJSON.takeError();
  auto module =
      DecoderBuilder(ctx, *this, GGUFTensors(file), options).build();
  if (!module)
    return module.takeError();
  ImportedModel result;
  result.module = std::move(*module);
  result.info = info;
  result.vocabJSON = std::move(*vocabJSON);
  result.maxTokens = options.maxTokens;
  return result;
}

llvm::Expected<OwningOpRef<ModuleOp>> DecoderBuilder::build() {
  ctx.loadDialect<mlir::kiln::KilnDialect, func::FuncDialect,
                  arith::ArithDialect, tensor::TensorDialect>();
  Location loc = FileLineColLoc::get(&ctx, tensors.path(), 0, 0);
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  b.setInsertionPointToEnd(module->getBody());
  if (auto e = buildStep("forward", /*batched=*/false))
    return std::move(e);
  if (options.batchedStep) {
    b.setInsertionPointToEnd(module->getBody());
    if (auto e = buildStep("forward_batch", /*batched=*/true))
      return std::move(e);
  }
  if (failed(module->verify()))
    return fail(tensors.path(),
                "the imported module does not verify (an importer bug)");
  return std::move(module);
}

llvm::Error DecoderBuilder::buildStep(StringRef name, bool batched) {
  Location loc = FileLineColLoc::get(&ctx, tensors.path(), 0, 0);
  int64_t d = info.embedding, hd = info.headDim, V = info.vocab;
  int64_t qWidth = info.heads * hd, kvWidth = info.kvHeads * hd;
  Type f32 = b.getF32Type();
  auto rows = [&](int64_t width) {
    return RankedTensorType::get({ShapedType::kDynamic, width}, f32);
  };
  auto cacheType = mlir::kiln::KVCacheType::get(
      &ctx, info.layers, info.context, info.kvHeads, hd, f32);
  auto tokensType = RankedTensorType::get({ShapedType::kDynamic}, b.getI32Type());
  // (tokens, position, cache, logits), or batched (tokens, slots,
  // positions, cache, logits): slots and positions are i32 per token.
  SmallVector<Type> inputs = {tokensType, b.getIndexType(), cacheType,
                              rows(V)};
  if (batched)
    inputs = {tokensType, tokensType, tokensType, cacheType, rows(V)};
  auto fnType = b.getFunctionType(inputs, {rows(V)});
  auto fn = func::FuncOp::create(b, loc, name, fnType);
  fn->setAttr(mlir::kiln::KilnDialect::MaxTokensAttrHelper::getNameStr(),
              b.getI64IntegerAttr(options.maxTokens));
  fn->setAttr(mlir::kiln::KilnDialect::TiedResultsAttrHelper::getNameStr(),
              b.getI64ArrayAttr({int64_t(inputs.size()) - 1}));
  Block *entry = fn.addEntryBlock();
  b.setInsertionPointToStart(entry);
  Value tokens = entry->getArgument(0);
  Value position, slots, positions;
  if (batched) {
    slots = entry->getArgument(1);
    positions = entry->getArgument(2);
  } else {
    position = entry->getArgument(1);
  }
  Value cache = entry->getArgument(inputs.size() - 2),
        logitsInit = entry->getArgument(inputs.size() - 1);
  Location l = loc;

  auto tokenEmbd = weight("token_embd.weight", {V, d});
  if (!tokenEmbd)
    return tokenEmbd.takeError();
  // Gemma scales its embeddings by sqrt(dim) (in f32, as llama.cpp does).
  float embeddingScale = gemma3 ? std::sqrt(float(d)) : 1.0f;
  Value x = mlir::kiln::EmbeddingOp::create(b, l, rows(d), *tokenEmbd, tokens,
                                            b.getF32FloatAttr(embeddingScale));
  FloatAttr eps = b.getF32FloatAttr(epsilon);
  // RMS norm of each head of a [T, heads * head_dim] tensor: one rms_norm
  // over the last dim of its [T, heads, head_dim] view.
  auto perHeadNorm = [&](Value t, Value w, int64_t heads) -> Value {
    auto split = RankedTensorType::get({ShapedType::kDynamic, heads, hd}, f32);
    SmallVector<ReassociationIndices> dims = {{0}, {1, 2}};
    Value tokenCount = tensor::DimOp::create(b, l, t, 0);
    SmallVector<OpFoldResult> shape = {tokenCount, b.getIndexAttr(heads),
                                       b.getIndexAttr(hd)};
    Value t3 = tensor::ExpandShapeOp::create(b, l, split, t, dims, shape);
    Value n3 = mlir::kiln::RMSNormOp::create(b, l, split, t3, w, eps);
    return tensor::CollapseShapeOp::create(b, l, rows(heads * hd), n3, dims);
  };

  for (int64_t layer = 0; layer < info.layers; ++layer) {
    std::string p = "blk." + std::to_string(layer) + ".";
    auto attnNorm = weight(p + "attn_norm.weight", {d});
    // Phi-3's attn_qkv holds q, k and v's rows one after the other; its
    // ffn_up holds the gate's rows, then up's.
    std::string qkv = p + "attn_qkv.weight", gateUp = p + "ffn_up.weight";
    int64_t fusedRows = qWidth + 2 * kvWidth, ff = info.feedForward;
    auto wq = fusedProjections ? weightRows(qkv, {fusedRows, d}, "q", 0, qWidth)
                               : weight(p + "attn_q.weight", {qWidth, d});
    auto wk = fusedProjections
                  ? weightRows(qkv, {fusedRows, d}, "k", qWidth, kvWidth)
                  : weight(p + "attn_k.weight", {kvWidth, d});
    auto wv = fusedProjections ? weightRows(qkv, {fusedRows, d}, "v",
                                            qWidth + kvWidth, kvWidth)
                               : weight(p + "attn_v.weight", {kvWidth, d});
    auto bq = optionalWeight(p + "attn_q.bias", {qWidth});
    auto bk = optionalWeight(p + "attn_k.bias", {kvWidth});
    auto bv = optionalWeight(p + "attn_v.bias", {kvWidth});
    auto wo = weight(p + "attn_output.weight", {d, qWidth});
    auto ffnNorm = weight(p + "ffn_norm.weight", {d});
    auto wg = fusedProjections ? weightRows(gateUp, {2 * ff, d}, "gate", 0, ff)
                               : weight(p + "ffn_gate.weight", {ff, d});
    auto wu = fusedProjections ? weightRows(gateUp, {2 * ff, d}, "up", ff, ff)
                               : weight(p + "ffn_up.weight", {ff, d});
    auto wd = weight(p + "ffn_down.weight", {d, info.feedForward});
    for (llvm::Expected<Value> *w :
         {&attnNorm, &wq, &wk, &wv, &bq, &bk, &bv, &wo, &ffnNorm, &wg, &wu, &wd})
      if (!*w)
        return w->takeError();
    Value qNorm, kNorm, postAttnNorm, postFfnNorm;
    if (qkNorm) {
      auto qn = weight(p + "attn_q_norm.weight", {hd});
      auto kn = weight(p + "attn_k_norm.weight", {hd});
      for (llvm::Expected<Value> *w : {&qn, &kn})
        if (!*w)
          return w->takeError();
      qNorm = *qn;
      kNorm = *kn;
    }
    if (gemma3) {
      auto pa = weight(p + "post_attention_norm.weight", {d});
      auto pf = weight(p + "post_ffw_norm.weight", {d});
      for (llvm::Expected<Value> *w : {&pa, &pf})
        if (!*w)
          return w->takeError();
      postAttnNorm = *pa;
      postFfnNorm = *pf;
    }
    // Gemma 3's sliding-window layers use their own rope base and no rope
    // scaling (llama.cpp: rope_freq_base_train_swa, freq_scale_train_swa).
    bool sliding = gemma3 && slidingWindow > 0 &&
                   (layer + 1) % swaPattern != 0;
    float layerRopeBase = sliding ? swaRopeBase : ropeBase;
    float layerRopeScale = sliding ? 1.0f : ropeScale;

    Value h = mlir::kiln::RMSNormOp::create(b, l, rows(d), x, *attnNorm, eps);
    Value q = mlir::kiln::LinearOp::create(b, l, rows(qWidth), h, *wq, *bq);
    Value k = mlir::kiln::LinearOp::create(b, l, rows(kvWidth), h, *wk, *bk);
    Value v = mlir::kiln::LinearOp::create(b, l, rows(kvWidth), h, *wv, *bv);
    if (qkNorm) {
      q = perHeadNorm(q, qNorm, info.heads);
      k = perHeadNorm(k, kNorm, info.kvHeads);
    }
    auto style = mlir::kiln::RopeStyleAttr::get(
        &ctx, neoxRope ? mlir::kiln::RopeStyle::NeoX
                       : mlir::kiln::RopeStyle::Llama);
    DenseF32ArrayAttr layerRopeFactors =
        sliding || ropeFactors.empty() ? DenseF32ArrayAttr()
                                       : b.getDenseF32ArrayAttr(ropeFactors);
    float layerRopeMagnitude = sliding ? 1.0f : ropeMagnitude;
    auto rope = [&](Value t, int64_t heads, int64_t width) -> Value {
      return mlir::kiln::RopeOp::create(
          b, l, rows(width), t, position, positions,
          b.getI64IntegerAttr(heads),
          b.getI64IntegerAttr(hd), b.getI64IntegerAttr(rotaryDim), style,
          b.getF32FloatAttr(layerRopeBase), b.getF32FloatAttr(layerRopeScale),
          layerRopeFactors, b.getF32FloatAttr(layerRopeMagnitude));
    };
    q = rope(q, info.heads, qWidth);
    k = rope(k, info.kvHeads, kvWidth);
    Value a = mlir::kiln::AttentionOp::create(
        b, l, rows(qWidth), q, k, v, cache, position, slots, positions,
        b.getI64IntegerAttr(layer), b.getI64IntegerAttr(info.heads),
        b.getF32FloatAttr(attentionScale), b.getBoolAttr(true),
        b.getI64IntegerAttr(sliding ? slidingWindow : 0),
        b.getF32FloatAttr(0.0f));
    Value o = mlir::kiln::LinearOp::create(b, l, rows(d), a, *wo, Value());
    if (gemma3)
      o = mlir::kiln::RMSNormOp::create(b, l, rows(d), o, postAttnNorm, eps);
    x = mlir::kiln::AddOp::create(b, l, x, o);
    Value h2 = mlir::kiln::RMSNormOp::create(b, l, rows(d), x, *ffnNorm, eps);
    Value g = mlir::kiln::LinearOp::create(b, l, rows(info.feedForward), h2,
                                           *wg, Value());
    Value u = mlir::kiln::LinearOp::create(b, l, rows(info.feedForward), h2,
                                           *wu, Value());
    Value s = gemma3 ? Value(mlir::kiln::GeGLUOp::create(
                           b, l, g, u, mlir::kiln::GeluApprox::Tanh))
                     : Value(mlir::kiln::SwiGLUOp::create(b, l, g, u));
    Value down = mlir::kiln::LinearOp::create(b, l, rows(d), s, *wd, Value());
    if (gemma3)
      down = mlir::kiln::RMSNormOp::create(b, l, rows(d), down, postFfnNorm,
                                           eps);
    x = mlir::kiln::AddOp::create(b, l, x, down);
  }

  // Only the rows whose logits are asked for go through the output head.
  Value c0 = arith::ConstantIndexOp::create(b, l, 0);
  Value total = tensor::DimOp::create(b, l, x, c0);
  Value wanted = tensor::DimOp::create(b, l, logitsInit, c0);
  Value first = arith::SubIOp::create(b, l, total, wanted);
  SmallVector<OpFoldResult> offsets = {first, b.getIndexAttr(0)};
  SmallVector<OpFoldResult> sizes = {wanted, b.getIndexAttr(d)};
  SmallVector<OpFoldResult> strides = {b.getIndexAttr(1), b.getIndexAttr(1)};
  Value last = tensor::ExtractSliceOp::create(b, l, rows(d), x, offsets, sizes,
                                              strides);
  auto outNorm = weight("output_norm.weight", {d});
  if (!outNorm)
    return outNorm.takeError();
  Value n = mlir::kiln::RMSNormOp::create(b, l, rows(d), last, *outNorm, eps);
  // Models with tied embeddings have no output.weight: reuse the table.
  auto head = optionalWeight("output.weight", {V, d});
  if (!head)
    return head.takeError();
  Value headWeight = *head ? *head : *tokenEmbd;
  Value logits =
      mlir::kiln::LinearOp::create(b, l, rows(V), n, headWeight, Value());
  func::ReturnOp::create(b, l, logits);
  return llvm::Error::success();
}

llvm::Expected<OwningOpRef<ModuleOp>> EncoderBuilder::build() {
  ctx.loadDialect<mlir::kiln::KilnDialect, func::FuncDialect,
                  arith::ArithDialect, tensor::TensorDialect>();
  Location l = FileLineColLoc::get(&ctx, tensors.path(), 0, 0);
  OwningOpRef<ModuleOp> module = ModuleOp::create(l);
  b.setInsertionPointToEnd(module->getBody());
  int64_t d = info.embedding, ff = info.feedForward, V = info.vocab;
  Type f32 = b.getF32Type();
  auto rows = [&](int64_t width) {
    return RankedTensorType::get({ShapedType::kDynamic, width}, f32);
  };
  // The decoder's step signature, so the runtime calls both alike; the
  // out-parameter gets the one row of the sentence embedding.
  auto cacheType = mlir::kiln::KVCacheType::get(
      &ctx, info.layers, info.context, info.kvHeads, info.headDim, f32);
  auto tokensType =
      RankedTensorType::get({ShapedType::kDynamic}, b.getI32Type());
  auto fnType = b.getFunctionType(
      {tokensType, b.getIndexType(), cacheType, rows(d)}, {rows(d)});
  auto fn = func::FuncOp::create(b, l, "forward", fnType);
  fn->setAttr(mlir::kiln::KilnDialect::MaxTokensAttrHelper::getNameStr(),
              b.getI64IntegerAttr(options.maxTokens));
  fn->setAttr(mlir::kiln::KilnDialect::TiedResultsAttrHelper::getNameStr(),
              b.getI64ArrayAttr({3}));
  Block *entry = fn.addEntryBlock();
  b.setInsertionPointToStart(entry);
  Value tokens = entry->getArgument(0), position = entry->getArgument(1),
        cache = entry->getArgument(2);
  FloatAttr eps = b.getF32FloatAttr(float(config.layerNormEps));

  auto wordEmbd = weight("token_embd.weight", {V, d});
  auto positionEmbd =
      weight("position_embd.weight", {config.maxPositions, d});
  auto typeEmbd = weight("token_types.weight", {config.typeVocabSize, d});
  auto embdNorm = weight("token_embd_norm.weight", {d});
  auto embdNormBias = weight("token_embd_norm.bias", {d});
  for (llvm::Expected<Value> *w :
       {&wordEmbd, &positionEmbd, &typeEmbd, &embdNorm, &embdNormBias})
    if (!*w)
      return w->takeError();
  Value x = mlir::kiln::EmbeddingOp::create(b, l, rows(d), *wordEmbd, tokens,
                                            b.getF32FloatAttr(1.0f));
  x = mlir::kiln::PositionEmbeddingOp::create(b, l, rows(d), x, *positionEmbd,
                                              position, 1);
  // One segment: every token has token type 0.
  Value c0 = arith::ConstantIndexOp::create(b, l, 0);
  x = mlir::kiln::PositionEmbeddingOp::create(b, l, rows(d), x, *typeEmbd, c0,
                                              0);
  x = mlir::kiln::LayerNormOp::create(b, l, rows(d), x, *embdNorm,
                                      *embdNormBias, eps);
  float scale = 1.0f / std::sqrt(float(info.headDim));
  for (int64_t layer = 0; layer < info.layers; ++layer) {
    std::string p = "blk." + std::to_string(layer) + ".";
    llvm::Expected<Value> w[] = {
        weight(p + "attn_q.weight", {d, d}),
        weight(p + "attn_q.bias", {d}),
        weight(p + "attn_k.weight", {d, d}),
        weight(p + "attn_k.bias", {d}),
        weight(p + "attn_v.weight", {d, d}),
        weight(p + "attn_v.bias", {d}),
        weight(p + "attn_output.weight", {d, d}),
        weight(p + "attn_output.bias", {d}),
        weight(p + "attn_output_norm.weight", {d}),
        weight(p + "attn_output_norm.bias", {d}),
        weight(p + "ffn_up.weight", {ff, d}),
        weight(p + "ffn_up.bias", {ff}),
        weight(p + "ffn_down.weight", {d, ff}),
        weight(p + "ffn_down.bias", {d}),
        weight(p + "layer_output_norm.weight", {d}),
        weight(p + "layer_output_norm.bias", {d})};
    for (llvm::Expected<Value> &v : w)
      if (!v)
        return v.takeError();
    auto linear = [&](Value in, int i, int64_t width) -> Value {
      return mlir::kiln::LinearOp::create(b, l, rows(width), in, *w[i],
                                          *w[i + 1]);
    };
    Value q = linear(x, 0, d), k = linear(x, 2, d), v = linear(x, 4, d);
    // Bidirectional: every token sees the whole sequence.
    Value a = mlir::kiln::AttentionOp::create(
        b, l, rows(d), q, k, v, cache, position, /*slots=*/Value(),
        /*positions=*/Value(), b.getI64IntegerAttr(layer),
        b.getI64IntegerAttr(info.heads), b.getF32FloatAttr(scale),
        b.getBoolAttr(false), b.getI64IntegerAttr(0), b.getF32FloatAttr(0.0f));
    // Post-norm blocks: LayerNorm(x + sublayer(x)).
    x = mlir::kiln::AddOp::create(b, l, x, linear(a, 6, d));
    x = mlir::kiln::LayerNormOp::create(b, l, rows(d), x, *w[8], *w[9], eps);
    Value h = mlir::kiln::GeluOp::create(b, l, linear(x, 10, ff),
                                         mlir::kiln::GeluApprox::Erf);
    x = mlir::kiln::AddOp::create(b, l, x, linear(h, 12, d));
    x = mlir::kiln::LayerNormOp::create(b, l, rows(d), x, *w[14], *w[15], eps);
  }
  Value embedding = mlir::kiln::MeanPoolOp::create(b, l, rows(d), x,
                                                   config.normalize);
  func::ReturnOp::create(b, l, embedding);
  if (failed(module->verify()))
    return fail(tensors.path(),
                "the imported module does not verify (an importer bug)");
  return std::move(module);
}

/// A BERT checkpoint: the encoder and its WordPiece vocabulary.
static llvm::Expected<ImportedModel>
importBert(MLIRContext &context, const safetensors::Checkpoint &checkpoint,
           const ImportOptions &options) {
  const safetensors::BertConfig &c = *checkpoint.bert;
  llvm::SmallString<256> configPath(checkpoint.directory);
  llvm::sys::path::append(configPath, "config.json");
  ModelInfo info;
  info.arch = "bert";
  info.encoder = true;
  info.name = llvm::sys::path::filename(checkpoint.directory).str();
  info.layers = c.layers;
  info.embedding = c.hiddenSize;
  info.heads = info.kvHeads = c.heads;
  info.headDim = c.hiddenSize / c.heads;
  info.vocab = c.vocabSize;
  info.feedForward = c.intermediateSize;
  info.trainedContext = c.maxPositions;
  // A sequence is encoded in one step: the positions are the step's tokens.
  info.context = std::min<int64_t>(options.maxTokens, c.maxPositions);
  if (options.maxTokens <= 0 || options.maxTokens > 4096)
    return fail(configPath, "max tokens per step " +
                                llvm::Twine(options.maxTokens) +
                                " is out of range [1, 4096]");
  ImportOptions encoderOptions = options;
  encoderOptions.maxTokens = info.context;

  llvm::SmallString<256> tokenizerPath(checkpoint.directory);
  llvm::sys::path::append(tokenizerPath, "tokenizer.json");
  auto tokenizerFile = llvm::MemoryBuffer::getFile(tokenizerPath,
                                                   /*IsText=*/true);
  if (!tokenizerFile)
    return fail(tokenizerPath, "cannot open (Kiln takes the vocabulary "
                               "from it): " +
                                   tokenizerFile.getError().message());
  auto vocabJSON = convertTokenizerJSON((*tokenizerFile)->getBuffer(),
                                        tokenizerPath, c.vocabSize,
                                        SpecialTokenIds{});
  if (!vocabJSON)
    return vocabJSON.takeError();
  auto module = EncoderBuilder(context, c, info,
                               SafetensorsTensors(checkpoint), encoderOptions)
                    .build();
  if (!module)
    return module.takeError();
  ImportedModel result;
  result.module = std::move(*module);
  result.info = info;
  result.vocabJSON = std::move(*vocabJSON);
  result.maxTokens = encoderOptions.maxTokens;
  return result;
}

llvm::Expected<ImportedModel>
importSafetensors(MLIRContext &context,
                  const safetensors::Checkpoint &checkpoint,
                  const ImportOptions &options) {
  if (checkpoint.bert)
    return importBert(context, checkpoint, options);
  const safetensors::LlamaConfig &c = checkpoint.config;
  llvm::SmallString<256> configPath(checkpoint.directory);
  llvm::sys::path::append(configPath, "config.json");
  DecoderConfig config;
  ModelInfo &info = config.info;
  info.arch = c.modelType;
  info.name = llvm::sys::path::filename(checkpoint.directory).str();
  info.layers = c.layers;
  info.embedding = c.hiddenSize;
  info.heads = c.heads;
  info.kvHeads = c.kvHeads;
  info.headDim = c.headDim;
  info.vocab = c.vocabSize;
  info.trainedContext = c.maxPositions;
  info.feedForward = c.intermediateSize;
  config.epsilon = float(c.rmsNormEps);
  config.ropeBase = float(c.ropeTheta);
  if (!(config.epsilon > 0.0f) || !(config.ropeBase > 0.0f) ||
      !std::isfinite(config.ropeBase))
    return fail(configPath, "rms_norm_eps and rope_theta must be positive "
                            "finite f32 numbers");
  config.rotaryDim = c.headDim;
  // GGUF converters permute Llama's Q/K rows for adjacent-pair rotation;
  // Hugging Face checkpoints keep them as trained, rotating halves.
  config.neoxRope = true;
  config.qkNorm = c.modelType == "qwen3";
  config.attentionScale = 1.0f / std::sqrt(float(c.headDim));
  if (auto e = chooseContext(config, options, configPath))
    return std::move(e);

  llvm::SmallString<256> tokenizerPath(checkpoint.directory);
  llvm::sys::path::append(tokenizerPath, "tokenizer.json");
  auto tokenizerFile = llvm::MemoryBuffer::getFile(tokenizerPath,
                                                   /*IsText=*/true);
  if (!tokenizerFile)
    return fail(tokenizerPath, "cannot open (Kiln takes the vocabulary "
                               "from it): " +
                                   tokenizerFile.getError().message());
  auto vocabJSON = convertTokenizerJSON(
      (*tokenizerFile)->getBuffer(), tokenizerPath, c.vocabSize,
      SpecialTokenIds{c.bosTokenId, c.eosTokenId});
  if (!vocabJSON)
    return vocabJSON.takeError();

  auto module = DecoderBuilder(context, config, SafetensorsTensors(checkpoint),
                               options)
                    .build();
  if (!module)
    return module.takeError();
  ImportedModel result;
  result.module = std::move(*module);
  result.info = info;
  result.vocabJSON = std::move(*vocabJSON);
  result.maxTokens = options.maxTokens;
  return result;
}

llvm::Expected<ImportedModel> importGGUF(MLIRContext &context,
                                               const gguf::GGUFFile &file,
                                               const ImportOptions &options) {
  Importer importer(context, file, options);
  return importer.run();
}

} // namespace kiln
