//===- Safetensors.h - validating reader for safetensors files --*- C++ -*-===//
//
// The one safetensors reader in Kiln, in the style of GGUF.h: the file is
// mapped, and every length, dtype, shape and byte range in its JSON header is
// checked against the bytes actually present before anything is used. Each
// problem is an llvm::Error of one line naming the file, the field and the
// byte offset. A SafetensorsFile that was returned successfully is fully
// validated: the tensors' byte ranges tile the data section exactly (no
// overlap, no gap, nothing past the end) and each range holds exactly its
// shape's elements.
//
// Format: huggingface/safetensors docs (an 8-byte little-endian header length
// N, N bytes of UTF-8 JSON, then the data section; offsets are relative to
// the data section). The 100 MB header ceiling is the reference
// implementation's MAX_HEADER_SIZE.
//
// Also here: the refusal of pickle-based checkpoints (PyTorch .bin/.pt/.pth),
// which cannot be read without running code the file chooses, and the reader
// of a Hugging Face Llama-family config.json.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_IMPORT_SAFETENSORS_H
#define KILN_IMPORT_SAFETENSORS_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kiln {
namespace safetensors {

/// Element types of the safetensors format ("F32", "BF16", ...).
enum class DType {
  Bool,
  U8,
  I8,
  F8_E5M2,
  F8_E4M3,
  I16,
  U16,
  F16,
  BF16,
  I32,
  U32,
  F32,
  F64,
  I64,
  U64,
};

/// Bytes per element of `dtype`.
unsigned getDTypeSize(DType dtype);
/// The format's spelling of `dtype` ("BF16").
llvm::StringRef getDTypeName(DType dtype);

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<uint64_t> shape; // row-major, outermost first (numpy order)
  uint64_t begin, end;         // relative to the data section
  uint64_t fileOffset;         // absolute: data section offset + begin
  uint64_t byteSize() const { return end - begin; }
};

class SafetensorsFile {
public:
  /// The reference implementation's MAX_HEADER_SIZE.
  static constexpr uint64_t kMaxHeaderBytes = 100'000'000;
  /// Dimensions per tensor; more is surely a corrupt file.
  static constexpr size_t kMaxRank = 8;

  /// Maps the file at `path` and parses it.
  static llvm::Expected<SafetensorsFile> open(llvm::StringRef path);
  /// Parses bytes already in memory; errors name the buffer identifier.
  static llvm::Expected<SafetensorsFile>
  parse(std::unique_ptr<llvm::MemoryBuffer> buffer);

  /// Tensors in data-offset order.
  llvm::ArrayRef<TensorInfo> tensors() const { return tensorInfos; }
  const TensorInfo *findTensor(llvm::StringRef name) const;
  /// The tensor's bytes; the range was validated at parse time.
  llvm::ArrayRef<uint8_t> tensorData(const TensorInfo &info) const;
  /// The free-form `__metadata__` string map (empty when absent).
  const std::map<std::string, std::string> &metadata() const {
    return metadataMap;
  }
  /// Absolute offset of the data section (8 + header length).
  uint64_t dataOffset() const { return dataSectionOffset; }

  llvm::StringRef path() const { return filePath; }
  size_t fileSize() const { return buffer->getBufferSize(); }
  /// The whole mapped file (weights are byte ranges of it).
  llvm::ArrayRef<uint8_t> fileBytes() const {
    return llvm::ArrayRef<uint8_t>(
        reinterpret_cast<const uint8_t *>(buffer->getBufferStart()),
        buffer->getBufferSize());
  }

private:
  friend class SafetensorsReader;
  SafetensorsFile() = default;

  std::unique_ptr<llvm::MemoryBuffer> buffer;
  std::string filePath;
  uint64_t dataSectionOffset = 0;
  std::vector<TensorInfo> tensorInfos;
  llvm::StringMap<size_t> tensorIndex;
  std::map<std::string, std::string> metadataMap;
};

/// True if `bytes` (the start of a file) look like a pickle stream or a zip
/// archive (PyTorch's checkpoint container).
bool hasPickleMagic(llvm::ArrayRef<uint8_t> bytes);

/// An error if `path` is a pickle-based checkpoint, by its extension (.bin,
/// .pt, .pth, .ckpt, .pkl, .pickle) or by its first bytes (a zip archive or a
/// pickle stream): loading one means running code the file chooses. A file
/// that cannot be read is not an error here (the real reader reports it).
llvm::Error refusePickleCheckpoint(llvm::StringRef path);

/// The hyperparameters of a Hugging Face Llama-family config.json
/// ("model_type": llama, mistral or qwen2).
struct LlamaConfig {
  std::string modelType;
  int64_t hiddenSize = 0, intermediateSize = 0, layers = 0, heads = 0,
          kvHeads = 0, headDim = 0, vocabSize = 0, maxPositions = 0;
  double rmsNormEps = 1e-6, ropeTheta = 10000.0;
  bool tieWordEmbeddings = false;
  /// bos_token_id / eos_token_id, -1 when absent.
  int64_t bosTokenId = -1, eosTokenId = -1;
};

/// The hyperparameters of a Hugging Face BERT config.json ("model_type":
/// "bert"), and how sentence-transformers pools it (modules.json and
/// 1_Pooling/config.json beside it, when present).
struct BertConfig {
  int64_t hiddenSize = 0, intermediateSize = 0, layers = 0, heads = 0,
          vocabSize = 0, maxPositions = 0, typeVocabSize = 0;
  double layerNormEps = 1e-12;
  /// sentence-transformers' Normalize module follows the pooling.
  bool normalize = false;
};

/// Parses and checks a BERT `config.json` text; `path` names it in errors.
llvm::Expected<BertConfig> parseBertConfig(llvm::StringRef text,
                                           llvm::StringRef path);

/// Parses and checks `config.json` text; `path` names it in errors.
llvm::Expected<LlamaConfig> parseLlamaConfig(llvm::StringRef text,
                                             llvm::StringRef path);
/// Reads `path` and parses it with parseLlamaConfig.
llvm::Expected<LlamaConfig> readLlamaConfig(llvm::StringRef path);

/// A checkpoint directory or file: the validated weights and their config.
struct Checkpoint {
  /// model.safetensors, or the shards model.safetensors.index.json names.
  std::vector<SafetensorsFile> shards;
  LlamaConfig config;
  /// Set for a BERT encoder ("model_type": "bert"); `config` is then unused.
  std::optional<BertConfig> bert;
  /// The directory holding config.json (and tokenizer.json, if any).
  std::string directory;

  /// Tensor `name` and the shard holding it; {nullptr, nullptr} if absent.
  std::pair<const TensorInfo *, const SafetensorsFile *>
  findTensor(llvm::StringRef name) const;
};

/// Opens `path`, a .safetensors file (config.json beside it) or a directory
/// holding config.json and model.safetensors or model.safetensors.index.json
/// with its shards, validates them and checks the tensors Llama needs
/// against the config's shapes.
llvm::Expected<Checkpoint> openCheckpoint(llvm::StringRef path);

} // namespace safetensors
} // namespace kiln

#endif // KILN_IMPORT_SAFETENSORS_H
