//===- Safetensors.cpp - validating reader for safetensors files ----------===//

#include "Import/Safetensors.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"

#include <algorithm>
#include <cmath>

using llvm::Error;
using llvm::Expected;
using llvm::StringRef;

namespace kiln {
namespace safetensors {

namespace {

struct DTypeEntry {
  const char *name;
  DType dtype;
  unsigned size;
};

constexpr DTypeEntry kDTypes[] = {
    {"BOOL", DType::Bool, 1},       {"U8", DType::U8, 1},
    {"I8", DType::I8, 1},           {"F8_E5M2", DType::F8_E5M2, 1},
    {"F8_E4M3", DType::F8_E4M3, 1}, {"I16", DType::I16, 2},
    {"U16", DType::U16, 2},         {"F16", DType::F16, 2},
    {"BF16", DType::BF16, 2},       {"I32", DType::I32, 4},
    {"U32", DType::U32, 4},         {"F32", DType::F32, 4},
    {"F64", DType::F64, 8},         {"I64", DType::I64, 8},
    {"U64", DType::U64, 8},
};

const DTypeEntry *lookupDType(StringRef name) {
  for (const DTypeEntry &e : kDTypes)
    if (name == e.name)
      return &e;
  return nullptr;
}

const DTypeEntry &entryOf(DType dtype) {
  for (const DTypeEntry &e : kDTypes)
    if (e.dtype == dtype)
      return e;
  return kDTypes[0];
}

Error makeError(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

std::string quote(StringRef s) {
  std::string out = "'";
  llvm::raw_string_ostream os(out);
  os.write_escaped(s);
  out += "'";
  return out;
}

/// A JSON integer that is >= 0 (json::Value stores integers as int64 or
/// uint64; a double such as 1.5 or 1e30 is not an offset).
std::optional<uint64_t> getUnsigned(const llvm::json::Value &v) {
  if (auto u = v.getAsUINT64())
    return *u;
  return std::nullopt;
}

/// The raw (still escaped, quoted) keys of a valid JSON object's top level
/// with their byte offsets.
std::vector<std::pair<StringRef, size_t>> scanTopLevelKeys(StringRef text) {
  std::vector<std::pair<StringRef, size_t>> keys;
  int depth = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      --depth;
    } else if (c == '"') {
      size_t start = i;
      for (++i; i < text.size() && text[i] != '"'; ++i)
        if (text[i] == '\\')
          ++i;
      size_t next = text.find_first_not_of(" \t\r\n", i + 1);
      if (depth == 1 && next != StringRef::npos && text[next] == ':')
        keys.push_back({text.slice(start, i + 1), start});
    }
  }
  return keys;
}

/// llvm::json::parse recurses once per level of nesting, and JSON nested
/// some ten thousand levels deep overflows the stack. A safetensors header
/// nests three levels (header, tensor, shape) and a config.json a handful, so
/// anything deeper than this is refused before it is parsed.
constexpr unsigned kMaxJSONDepth = 64;

/// The offset of the bracket that opens level kMaxJSONDepth + 1 of `text`
/// (brackets in strings do not count), if any.
std::optional<size_t> findTooDeepJSON(StringRef text) {
  unsigned depth = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '{' || c == '[') {
      if (++depth > kMaxJSONDepth)
        return i;
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    } else if (c == '"') {
      for (++i; i < text.size() && text[i] != '"'; ++i)
        if (text[i] == '\\')
          ++i;
    }
  }
  return std::nullopt;
}

} // namespace

unsigned getDTypeSize(DType dtype) { return entryOf(dtype).size; }
StringRef getDTypeName(DType dtype) { return entryOf(dtype).name; }

/// Parses and validates one buffer into a SafetensorsFile.
class SafetensorsReader {
public:
  SafetensorsReader(SafetensorsFile &file, StringRef bytes)
      : file(file), bytes(bytes) {}

  Error read();

private:
  Error fail(uint64_t offset, const llvm::Twine &field,
             const llvm::Twine &problem) const {
    return makeError(llvm::Twine(file.filePath) + ": " + field + " at offset " +
                     llvm::Twine(offset) + ": " + problem);
  }
  /// Where key `name` is in the header text, or the header's start when it
  /// is spelled with escapes.
  uint64_t keyOffset(StringRef name) const {
    auto it = keyOffsets.find(("\"" + name + "\"").str());
    return 8 + (it == keyOffsets.end() ? 0 : it->second);
  }
  Error readTensor(StringRef name, const llvm::json::Value &entry);
  Error readMetadata(const llvm::json::Value &entry);

  SafetensorsFile &file;
  StringRef bytes;
  StringRef header;
  uint64_t dataSize = 0;
  /// Header offsets of the top-level keys, quoted as written.
  llvm::StringMap<uint64_t> keyOffsets;
};

Error SafetensorsReader::read() {
  if (hasPickleMagic(llvm::arrayRefFromStringRef(bytes)))
    return fail(0, "header length",
                "the file is a pickle or zip (PyTorch) checkpoint, not "
                "safetensors; Kiln does not load pickles because unpickling "
                "can execute arbitrary code");
  if (bytes.size() < 8)
    return fail(0, "header length",
                llvm::formatv("truncated: needs 8 bytes, the file has {0}",
                              bytes.size())
                    .str());
  uint64_t headerLength = llvm::support::endian::read64le(bytes.data());
  if (headerLength > SafetensorsFile::kMaxHeaderBytes)
    return fail(0, "header length",
                llvm::formatv("{0} bytes exceeds the {1}-byte limit",
                              headerLength, SafetensorsFile::kMaxHeaderBytes)
                    .str());
  if (headerLength > bytes.size() - 8)
    return fail(0, "header length",
                llvm::formatv("{0} bytes runs past the end of the {1}-byte "
                              "file (truncated)",
                              headerLength, bytes.size())
                    .str());
  if (headerLength < 2)
    return fail(
        0, "header length",
        llvm::formatv("{0} bytes cannot hold a JSON object", headerLength)
            .str());
  header = bytes.substr(8, headerLength);
  file.dataSectionOffset = 8 + headerLength;
  dataSize = bytes.size() - file.dataSectionOffset;

  if (!llvm::json::isUTF8(header)) {
    // isUTF8 reports no position; find the first bad byte for the message.
    size_t bad = 0;
    for (size_t i = 0; i <= header.size(); ++i)
      if (!llvm::json::isUTF8(header.take_front(i))) {
        bad = i - 1;
        break;
      }
    return fail(8 + bad, "header", "is not valid UTF-8");
  }
  if (!header.starts_with("{"))
    return fail(8, "header", "does not start with '{' (not a JSON object)");
  if (std::optional<size_t> deep = findTooDeepJSON(header))
    return fail(8 + *deep, "header",
                "nests deeper than " + llvm::Twine(kMaxJSONDepth) + " levels");
  Expected<llvm::json::Value> json = llvm::json::parse(header);
  if (!json)
    return fail(8, "header",
                "is not valid JSON: " + llvm::toString(json.takeError()));
  const llvm::json::Object *root = json->getAsObject();
  if (!root)
    return fail(8, "header", "is not a JSON object");
  // llvm::json keeps one of two equal keys silently; a tensor named twice is
  // ambiguous, so count the keys in the text.
  size_t rawKeys = 0;
  for (auto [key, offset] : scanTopLevelKeys(header)) {
    ++rawKeys;
    if (!keyOffsets.try_emplace(key, offset).second)
      return fail(8 + offset, "header", "duplicate key " + key.str());
  }
  if (rawKeys != root->size())
    return fail(8, "header", "has a duplicate key (spelled with escapes)");

  // Visit keys in a fixed order so that the first error reported does not
  // depend on hashing.
  std::vector<StringRef> keys;
  for (const auto &kv : *root)
    keys.push_back(kv.first);
  llvm::sort(keys);
  for (StringRef key : keys) {
    const llvm::json::Value &entry = *root->get(key);
    if (key == "__metadata__") {
      if (Error e = readMetadata(entry))
        return e;
      continue;
    }
    if (Error e = readTensor(key, entry))
      return e;
  }

  // The ranges must tile the data section: sorted by start, each begins where
  // the previous one ended, the first at 0 and the last at the end.
  auto &infos = file.tensorInfos;
  llvm::sort(infos, [](const TensorInfo &a, const TensorInfo &b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  uint64_t expected = 0;
  const TensorInfo *previous = nullptr;
  for (const TensorInfo &t : infos) {
    if (t.begin < expected)
      return fail(file.dataSectionOffset + t.begin,
                  "tensor " + quote(t.name) + " data_offsets",
                  llvm::formatv("[{0}, {1}] overlaps tensor {2} ending at {3}",
                                t.begin, t.end, quote(previous->name), expected)
                      .str());
    if (t.begin > expected)
      return fail(file.dataSectionOffset + expected,
                  "tensor " + quote(t.name) + " data_offsets",
                  llvm::formatv("[{0}, {1}] leaves a gap of {2} bytes after "
                                "{3}",
                                t.begin, t.end, t.begin - expected,
                                previous ? quote(previous->name)
                                         : std::string("the header"))
                      .str());
    expected = t.end;
    previous = &t;
  }
  if (expected != dataSize)
    return fail(file.dataSectionOffset + expected, "data section",
                llvm::formatv("{0} bytes after the last tensor belong to no "
                              "tensor",
                              dataSize - expected)
                    .str());
  for (auto [i, t] : llvm::enumerate(infos))
    file.tensorIndex[t.name] = i;
  return Error::success();
}

Error SafetensorsReader::readMetadata(const llvm::json::Value &entry) {
  uint64_t at = keyOffset("__metadata__");
  const llvm::json::Object *obj = entry.getAsObject();
  if (!obj)
    return fail(at, "__metadata__", "is not a JSON object of strings");
  for (const auto &kv : *obj) {
    std::optional<StringRef> s = kv.second.getAsString();
    if (!s)
      return fail(at, "__metadata__ " + quote(kv.first),
                  "is not a string (the format allows only strings here)");
    file.metadataMap[kv.first.str()] = s->str();
  }
  return Error::success();
}

Error SafetensorsReader::readTensor(StringRef name,
                                    const llvm::json::Value &entry) {
  uint64_t at = keyOffset(name);
  std::string field = "tensor " + quote(name);
  if (name.empty())
    return fail(at, "tensor name", "must not be empty");
  const llvm::json::Object *obj = entry.getAsObject();
  if (!obj)
    return fail(at, field, "is not a JSON object");
  for (const auto &kv : *obj)
    if (kv.first != "dtype" && kv.first != "shape" &&
        kv.first != "data_offsets")
      return fail(at, field,
                  "has unknown field " + quote(kv.first) +
                      " (expected dtype, shape, data_offsets)");

  TensorInfo info;
  info.name = name.str();
  std::optional<StringRef> dtypeName = obj->getString("dtype");
  if (!dtypeName)
    return fail(at, field + " dtype", "is missing or not a string");
  const DTypeEntry *dtype = lookupDType(*dtypeName);
  if (!dtype)
    return fail(at, field + " dtype",
                "unknown dtype " + quote(*dtypeName) +
                    " (known: BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, "
                    "BF16, I32, U32, F32, F64, I64, U64)");
  info.dtype = dtype->dtype;

  const llvm::json::Array *shape = obj->getArray("shape");
  if (!shape)
    return fail(at, field + " shape", "is missing or not an array");
  if (shape->size() > SafetensorsFile::kMaxRank)
    return fail(at, field + " shape",
                llvm::formatv("has {0} dimensions, at most {1} are accepted",
                              shape->size(), SafetensorsFile::kMaxRank)
                    .str());
  uint64_t elements = 1;
  bool overflow = false;
  for (auto [i, d] : llvm::enumerate(*shape)) {
    std::optional<uint64_t> dim = getUnsigned(d);
    if (!dim || *dim > uint64_t(INT64_MAX))
      return fail(at, field + " shape[" + llvm::Twine(i) + "]",
                  "is not a non-negative integer");
    info.shape.push_back(*dim);
    overflow |= __builtin_mul_overflow(elements, *dim, &elements);
  }
  uint64_t expectedBytes = 0;
  overflow |=
      __builtin_mul_overflow(elements, uint64_t(dtype->size), &expectedBytes);

  const llvm::json::Array *offsets = obj->getArray("data_offsets");
  if (!offsets || offsets->size() != 2)
    return fail(at, field + " data_offsets",
                "is missing or not an array of two integers");
  std::optional<uint64_t> begin = getUnsigned((*offsets)[0]);
  std::optional<uint64_t> end = getUnsigned((*offsets)[1]);
  if (!begin || !end)
    return fail(at, field + " data_offsets",
                "is not an array of two non-negative integers");
  if (*begin > *end)
    return fail(
        at, field + " data_offsets",
        llvm::formatv("[{0}, {1}] ends before it begins", *begin, *end).str());
  if (*end > dataSize)
    return fail(at, field + " data_offsets",
                llvm::formatv("[{0}, {1}] runs past the end of the {2}-byte "
                              "data section",
                              *begin, *end, dataSize)
                    .str());
  if (overflow || expectedBytes != *end - *begin) {
    std::string dims;
    for (uint64_t d : info.shape)
      dims += (dims.empty() ? "" : "x") + std::to_string(d);
    return fail(at, field + " shape",
                llvm::formatv("[{0}] of {1} needs {2} bytes, data_offsets "
                              "[{3}, {4}] hold {5}",
                              dims, dtype->name,
                              overflow ? std::string("more than 2^64")
                                       : std::to_string(expectedBytes),
                              *begin, *end, *end - *begin)
                    .str());
  }
  info.begin = *begin;
  info.end = *end;
  info.fileOffset = file.dataSectionOffset + *begin;
  file.tensorInfos.push_back(std::move(info));
  return Error::success();
}

Expected<SafetensorsFile>
SafetensorsFile::parse(std::unique_ptr<llvm::MemoryBuffer> buffer) {
  SafetensorsFile file;
  file.filePath = buffer->getBufferIdentifier().str();
  file.buffer = std::move(buffer);
  SafetensorsReader reader(file, file.buffer->getBuffer());
  if (Error e = reader.read())
    return std::move(e);
  return std::move(file);
}

Expected<SafetensorsFile> SafetensorsFile::open(StringRef path) {
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                            /*RequiresNullTerminator=*/false);
  if (!buffer)
    return llvm::createStringError(
        buffer.getError(),
        path + ": cannot open: " + buffer.getError().message());
  return parse(std::move(*buffer));
}

const TensorInfo *SafetensorsFile::findTensor(StringRef name) const {
  auto it = tensorIndex.find(name);
  return it == tensorIndex.end() ? nullptr : &tensorInfos[it->second];
}

llvm::ArrayRef<uint8_t>
SafetensorsFile::tensorData(const TensorInfo &info) const {
  return llvm::ArrayRef<uint8_t>(
      reinterpret_cast<const uint8_t *>(buffer->getBufferStart()) +
          info.fileOffset,
      info.byteSize());
}

bool hasPickleMagic(llvm::ArrayRef<uint8_t> bytes) {
  // A zip local file header (torch.save since PyTorch 1.6) or a pickle
  // stream: the PROTO opcode 0x80 followed by a protocol number 2..5.
  if (bytes.size() >= 4 && bytes[0] == 'P' && bytes[1] == 'K' &&
      bytes[2] == 3 && bytes[3] == 4)
    return true;
  return bytes.size() >= 2 && bytes[0] == 0x80 && bytes[1] >= 2 &&
         bytes[1] <= 5;
}

Error refusePickleCheckpoint(StringRef path) {
  auto why = [&](const llvm::Twine &what) {
    return makeError(path + ": " + what +
                     "; Kiln refuses pickle-based checkpoints because "
                     "unpickling can execute arbitrary code (convert the "
                     "model to safetensors or GGUF)");
  };
  std::string ext = llvm::sys::path::extension(path).lower();
  for (StringRef pickled : {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"})
    if (ext == pickled)
      return why("a " + ext + " file is a PyTorch pickle checkpoint");
  if (llvm::sys::fs::is_directory(path))
    return Error::success();
  int fd;
  if (llvm::sys::fs::openFileForRead(path, fd))
    return Error::success();
  uint8_t head[4] = {0, 0, 0, 0};
  auto read = llvm::sys::fs::readNativeFile(
      llvm::sys::fs::convertFDToNativeFile(fd),
      llvm::MutableArrayRef<char>(reinterpret_cast<char *>(head), 4));
  llvm::sys::Process::SafelyCloseFileDescriptor(fd);
  if (!read) {
    llvm::consumeError(read.takeError());
    return Error::success();
  }
  if (hasPickleMagic(llvm::ArrayRef<uint8_t>(head, *read)))
    return why(head[0] == 'P' ? "the file is a zip (PyTorch) checkpoint"
                              : "the file is a pickle stream");
  return Error::success();
}

Expected<LlamaConfig> parseLlamaConfig(StringRef text, StringRef path) {
  auto fail = [&](const llvm::Twine &field, const llvm::Twine &problem) {
    return makeError(path + ": " + field + ": " + problem);
  };
  if (!llvm::json::isUTF8(text))
    return fail("config", "is not valid UTF-8");
  if (std::optional<size_t> deep = findTooDeepJSON(text))
    return fail("config", "nests deeper than " + llvm::Twine(kMaxJSONDepth) +
                              " levels (at byte " + llvm::Twine(*deep) + ")");
  Expected<llvm::json::Value> json = llvm::json::parse(text);
  if (!json)
    return fail("config",
                "is not valid JSON: " + llvm::toString(json.takeError()));
  const llvm::json::Object *obj = json->getAsObject();
  if (!obj)
    return fail("config", "is not a JSON object");

  LlamaConfig config;
  std::optional<StringRef> modelType = obj->getString("model_type");
  if (!modelType)
    return fail("model_type", "is missing or not a string");
  config.modelType = modelType->str();
  if (*modelType != "llama" && *modelType != "mistral" &&
      *modelType != "qwen2" && *modelType != "qwen3")
    return fail("model_type",
                quote(*modelType) +
                    " is not supported (llama, mistral, qwen2, qwen3)");

  auto readInt = [&](StringRef key, int64_t &out, int64_t limit,
                     bool required) -> Error {
    const llvm::json::Value *v = obj->get(key);
    if (!v || v->kind() == llvm::json::Value::Null) {
      if (required)
        return fail(key, "is missing");
      return Error::success();
    }
    std::optional<int64_t> i = v->getAsInteger();
    if (!i)
      return fail(key, "is not an integer");
    if (*i < 1 || *i > limit)
      return fail(
          key, llvm::formatv("{0} is out of range [1, {1}]", *i, limit).str());
    out = *i;
    return Error::success();
  };
  constexpr int64_t kMaxDim = 1 << 20;
  if (Error e = readInt("hidden_size", config.hiddenSize, kMaxDim, true))
    return std::move(e);
  if (Error e =
          readInt("intermediate_size", config.intermediateSize, kMaxDim, true))
    return std::move(e);
  if (Error e = readInt("num_hidden_layers", config.layers, 4096, true))
    return std::move(e);
  if (Error e = readInt("num_attention_heads", config.heads, 4096, true))
    return std::move(e);
  if (Error e = readInt("vocab_size", config.vocabSize, 1 << 24, true))
    return std::move(e);
  if (Error e = readInt("max_position_embeddings", config.maxPositions, 1 << 24,
                        true))
    return std::move(e);
  config.kvHeads = config.heads;
  if (Error e = readInt("num_key_value_heads", config.kvHeads, 4096, false))
    return std::move(e);
  if (config.heads % config.kvHeads != 0)
    return fail("num_key_value_heads",
                llvm::formatv("{0} does not divide num_attention_heads {1}",
                              config.kvHeads, config.heads)
                    .str());
  if (const llvm::json::Value *hd = obj->get("head_dim");
      hd && hd->kind() != llvm::json::Value::Null) {
    if (Error e = readInt("head_dim", config.headDim, 65536, true))
      return std::move(e);
  } else {
    if (config.hiddenSize % config.heads != 0)
      return fail("num_attention_heads",
                  llvm::formatv("{0} does not divide hidden_size {1}",
                                config.heads, config.hiddenSize)
                      .str());
    config.headDim = config.hiddenSize / config.heads;
  }
  if (config.headDim % 2 != 0)
    return fail("head_dim", llvm::formatv("{0} is odd; rotary embeddings "
                                          "rotate pairs",
                                          config.headDim)
                                .str());

  auto readPositive = [&](StringRef key, double &out) -> Error {
    const llvm::json::Value *v = obj->get(key);
    if (!v)
      return Error::success();
    std::optional<double> d = v->getAsNumber();
    if (!d || !std::isfinite(*d) || *d <= 0)
      return fail(key, "is not a positive finite number");
    out = *d;
    return Error::success();
  };
  if (Error e = readPositive("rms_norm_eps", config.rmsNormEps))
    return std::move(e);
  if (Error e = readPositive("rope_theta", config.ropeTheta))
    return std::move(e);
  if (const llvm::json::Value *tie = obj->get("tie_word_embeddings")) {
    std::optional<bool> b = tie->getAsBoolean();
    if (!b)
      return fail("tie_word_embeddings", "is not a boolean");
    config.tieWordEmbeddings = *b;
  }
  // Llama 3.1 lists several eos ids; the first is the one generation stops at.
  for (auto [key, out] : {std::pair<StringRef, int64_t *>{"bos_token_id",
                                                          &config.bosTokenId},
                          {"eos_token_id", &config.eosTokenId}}) {
    const llvm::json::Value *v = obj->get(key);
    if (v && v->getAsArray() && !v->getAsArray()->empty())
      v = &v->getAsArray()->front();
    if (!v || v->kind() == llvm::json::Value::Null)
      continue;
    std::optional<int64_t> id = v->getAsInteger();
    if (!id || *id < 0 || *id >= config.vocabSize)
      return fail(key, "is not a token id below vocab_size");
    *out = *id;
  }
  if (const llvm::json::Value *scaling = obj->get("rope_scaling"))
    if (scaling->kind() != llvm::json::Value::Null)
      return fail("rope_scaling", "is not supported yet (only null)");
  if (const llvm::json::Value *act = obj->get("hidden_act")) {
    std::optional<StringRef> s = act->getAsString();
    if (!s || *s != "silu")
      return fail("hidden_act", "is not \"silu\" (the SwiGLU of Llama)");
  }
  return config;
}

Expected<BertConfig> parseBertConfig(StringRef text, StringRef path) {
  auto fail = [&](const llvm::Twine &field, const llvm::Twine &problem) {
    return makeError(path + ": " + field + ": " + problem);
  };
  if (std::optional<size_t> deep = findTooDeepJSON(text))
    return fail("config", "nests deeper than " + llvm::Twine(kMaxJSONDepth) +
                              " levels (at byte " + llvm::Twine(*deep) + ")");
  Expected<llvm::json::Value> json = llvm::json::parse(text);
  if (!json)
    return fail("config",
                "is not valid JSON: " + llvm::toString(json.takeError()));
  const llvm::json::Object *obj = json->getAsObject();
  if (!obj || obj->getString("model_type") != "bert")
    return fail("model_type", "is not \"bert\"");
  BertConfig config;
  for (auto [key, out, limit] :
       {std::tuple<StringRef, int64_t *, int64_t>{"hidden_size",
                                                  &config.hiddenSize, 1 << 20},
        {"intermediate_size", &config.intermediateSize, 1 << 20},
        {"num_hidden_layers", &config.layers, 4096},
        {"num_attention_heads", &config.heads, 4096},
        {"vocab_size", &config.vocabSize, 1 << 24},
        {"max_position_embeddings", &config.maxPositions, 1 << 24},
        {"type_vocab_size", &config.typeVocabSize, 1 << 16}}) {
    std::optional<int64_t> v = obj->getInteger(key);
    if (!v)
      return fail(key, "is missing or not an integer");
    if (*v < 1 || *v > limit)
      return fail(key, llvm::formatv("{0} is out of range [1, {1}]", *v, limit)
                           .str());
    *out = *v;
  }
  if (config.hiddenSize % config.heads != 0)
    return fail("num_attention_heads",
                llvm::formatv("{0} does not divide hidden_size {1}",
                              config.heads, config.hiddenSize)
                    .str());
  if (const llvm::json::Value *eps = obj->get("layer_norm_eps")) {
    std::optional<double> d = eps->getAsNumber();
    if (!d || !std::isfinite(*d) || *d <= 0)
      return fail("layer_norm_eps", "is not a positive finite number");
    config.layerNormEps = *d;
  }
  if (std::optional<StringRef> act = obj->getString("hidden_act");
      act && *act != "gelu")
    return fail("hidden_act", quote(*act) + " is not supported (gelu)");
  if (std::optional<StringRef> pos = obj->getString("position_embedding_type");
      pos && *pos != "absolute")
    return fail("position_embedding_type",
                quote(*pos) + " is not supported (absolute)");
  return config;
}

/// sentence-transformers' modules.json and 1_Pooling/config.json: mean
/// pooling is what Kiln computes; Normalize after it is optional.
static Error readSentenceTransformersPooling(StringRef directory,
                                             BertConfig &config) {
  auto readJSON = [](const llvm::Twine &path) -> Expected<llvm::json::Value> {
    auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
    if (!buffer)
      return llvm::json::Value(nullptr);
    if ((*buffer)->getBufferSize() > (1u << 20))
      return makeError(path + ": larger than 1 MiB");
    if (findTooDeepJSON((*buffer)->getBuffer()))
      return makeError(path + ": nests too deep");
    Expected<llvm::json::Value> json = llvm::json::parse((*buffer)->getBuffer());
    if (!json)
      return makeError(path + ": is not valid JSON: " +
                       llvm::toString(json.takeError()));
    return json;
  };
  Expected<llvm::json::Value> modules = readJSON(directory + "/modules.json");
  if (!modules)
    return modules.takeError();
  if (const llvm::json::Array *list = modules->getAsArray())
    for (const llvm::json::Value &m : *list)
      if (const llvm::json::Object *o = m.getAsObject())
        if (o->getString("type") == "sentence_transformers.models.Normalize")
          config.normalize = true;
  Expected<llvm::json::Value> pooling =
      readJSON(directory + "/1_Pooling/config.json");
  if (!pooling)
    return pooling.takeError();
  if (const llvm::json::Object *o = pooling->getAsObject()) {
    for (StringRef other : {"pooling_mode_cls_token", "pooling_mode_max_tokens",
                            "pooling_mode_mean_sqrt_len_tokens"})
      if (o->getBoolean(other).value_or(false))
        return makeError(directory + "/1_Pooling/config.json: " + other +
                         " is not supported (mean pooling only)");
    if (!o->getBoolean("pooling_mode_mean_tokens").value_or(true))
      return makeError(directory + "/1_Pooling/config.json: "
                                   "pooling_mode_mean_tokens is false (Kiln "
                                   "pools by the mean)");
  }
  return Error::success();
}

Expected<LlamaConfig> readLlamaConfig(StringRef path) {
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buffer)
    return llvm::createStringError(
        buffer.getError(),
        path + ": cannot open: " + buffer.getError().message());
  if ((*buffer)->getBufferSize() > (64u << 20))
    return makeError(path + ": config: larger than 64 MiB");
  return parseLlamaConfig((*buffer)->getBuffer(), path);
}

std::pair<const TensorInfo *, const SafetensorsFile *>
Checkpoint::findTensor(StringRef name) const {
  for (const SafetensorsFile &shard : shards)
    if (const TensorInfo *t = shard.findTensor(name))
      return {t, &shard};
  return {nullptr, nullptr};
}

/// The shard files model.safetensors.index.json names in its weight_map,
/// each once, in order of first appearance.
static Expected<std::vector<std::string>> readShardIndex(StringRef path) {
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buffer)
    return llvm::createStringError(
        buffer.getError(),
        path + ": cannot open: " + buffer.getError().message());
  StringRef text = (*buffer)->getBuffer();
  if (text.size() > (64u << 20))
    return makeError(path + ": larger than 64 MiB");
  if (std::optional<size_t> deep = findTooDeepJSON(text))
    return makeError(path + ": nests deeper than " +
                     llvm::Twine(kMaxJSONDepth) + " levels (at byte " +
                     llvm::Twine(*deep) + ")");
  Expected<llvm::json::Value> json = llvm::json::parse(text);
  if (!json)
    return makeError(path + ": is not valid JSON: " +
                     llvm::toString(json.takeError()));
  const llvm::json::Object *map =
      json->getAsObject() ? json->getAsObject()->getObject("weight_map")
                          : nullptr;
  if (!map)
    return makeError(path + ": weight_map is missing or not an object");
  std::vector<std::string> files;
  for (const auto &[tensor, file] : *map) {
    std::optional<StringRef> name = file.getAsString();
    // A shard is a file beside the index, never a path elsewhere.
    if (!name || name->empty() || name->contains('/') ||
        name->contains('\\') || *name == "." || *name == "..")
      return makeError(path + ": weight_map[" + quote(tensor.str()) +
                       "] is not a file name in the checkpoint directory");
    if (!llvm::is_contained(files, *name))
      files.push_back(name->str());
  }
  if (files.empty())
    return makeError(path + ": weight_map names no tensors");
  // json::Object is unordered: sort for a deterministic shard order.
  llvm::sort(files);
  return files;
}

Expected<Checkpoint> openCheckpoint(StringRef path) {
  llvm::SmallString<256> configPath, directory;
  std::vector<std::string> weightPaths;
  if (llvm::sys::fs::is_directory(path)) {
    directory = path;
    llvm::SmallString<256> single(path), index(path);
    llvm::sys::path::append(single, "model.safetensors");
    llvm::sys::path::append(index, "model.safetensors.index.json");
    if (llvm::sys::fs::exists(single)) {
      weightPaths.push_back(single.str().str());
    } else if (llvm::sys::fs::exists(index)) {
      Expected<std::vector<std::string>> shards = readShardIndex(index);
      if (!shards)
        return shards.takeError();
      for (const std::string &name : *shards) {
        llvm::SmallString<256> p(path);
        llvm::sys::path::append(p, name);
        weightPaths.push_back(p.str().str());
      }
    } else {
      for (StringRef pickled : {"pytorch_model.bin", "model.pt", "model.pth"}) {
        llvm::SmallString<256> p(path);
        llvm::sys::path::append(p, pickled);
        if (llvm::sys::fs::exists(p))
          return refusePickleCheckpoint(p);
      }
      return makeError(path + ": no model.safetensors or "
                              "model.safetensors.index.json in the directory");
    }
  } else {
    directory = llvm::sys::path::parent_path(path);
    weightPaths.push_back(path.str());
  }
  configPath = directory;
  llvm::sys::path::append(configPath, "config.json");
  for (const std::string &p : weightPaths)
    if (Error e = refusePickleCheckpoint(p))
      return std::move(e);
  Checkpoint checkpoint;
  checkpoint.directory = directory.str().str();
  auto configText = llvm::MemoryBuffer::getFile(configPath, /*IsText=*/true);
  // The model type picks the reader; each reports its own errors.
  auto isBert = [&] {
    if (!configText || (*configText)->getBufferSize() > (64u << 20) ||
        findTooDeepJSON((*configText)->getBuffer()))
      return false;
    Expected<llvm::json::Value> json =
        llvm::json::parse((*configText)->getBuffer());
    if (!json) {
      llvm::consumeError(json.takeError());
      return false;
    }
    return json->getAsObject() &&
           json->getAsObject()->getString("model_type") == "bert";
  };
  if (isBert()) {
    Expected<BertConfig> bert =
        parseBertConfig((*configText)->getBuffer(), configPath);
    if (!bert)
      return bert.takeError();
    if (Error e = readSentenceTransformersPooling(directory, *bert))
      return std::move(e);
    checkpoint.bert = *bert;
  } else {
    Expected<LlamaConfig> config = readLlamaConfig(configPath);
    if (!config)
      return config.takeError();
    checkpoint.config = std::move(*config);
  }
  for (const std::string &p : weightPaths) {
    Expected<SafetensorsFile> shard = SafetensorsFile::open(p);
    if (!shard)
      return shard.takeError();
    for (const TensorInfo &t : shard->tensors())
      if (auto [other, otherShard] = checkpoint.findTensor(t.name); other)
        return makeError(shard->path() + ": tensor " + quote(t.name) +
                         " is also in " + otherShard->path());
    checkpoint.shards.push_back(std::move(*shard));
  }

  // The tensors Llama needs, with the shapes the config implies.
  const LlamaConfig &c = checkpoint.config;
  auto check = [&](const std::string &name,
                   std::vector<uint64_t> shape) -> Error {
    auto [t, weights] = checkpoint.findTensor(name);
    if (!t)
      return makeError(checkpoint.shards.front().path() +
                       ": missing tensor " + quote(name));
    if (t->dtype != DType::F32 && t->dtype != DType::F16 &&
        t->dtype != DType::BF16)
      return makeError(weights->path() + ": tensor " + quote(name) +
                       " at offset " + llvm::Twine(t->fileOffset) + ": dtype " +
                       getDTypeName(t->dtype) +
                       " is not supported (F32, F16, BF16)");
    if (t->shape != shape) {
      auto text = [](llvm::ArrayRef<uint64_t> s) {
        std::string out;
        for (uint64_t d : s)
          out += (out.empty() ? "" : "x") + std::to_string(d);
        return out;
      };
      return makeError(weights->path() + ": tensor " + quote(name) +
                       " at offset " + llvm::Twine(t->fileOffset) + ": shape " +
                       text(t->shape) + ", expected " + text(shape) +
                       " from config.json");
    }
    return Error::success();
  };
  if (checkpoint.bert) {
    const BertConfig &bc = *checkpoint.bert;
    uint64_t d = bc.hiddenSize, ff = bc.intermediateSize;
    std::vector<std::pair<std::string, std::vector<uint64_t>>> needed = {
        {"embeddings.word_embeddings.weight", {uint64_t(bc.vocabSize), d}},
        {"embeddings.position_embeddings.weight",
         {uint64_t(bc.maxPositions), d}},
        {"embeddings.token_type_embeddings.weight",
         {uint64_t(bc.typeVocabSize), d}},
        {"embeddings.LayerNorm.weight", {d}},
        {"embeddings.LayerNorm.bias", {d}}};
    for (int64_t i = 0; i < bc.layers; ++i) {
      std::string p = "encoder.layer." + std::to_string(i) + ".";
      for (StringRef proj : {"attention.self.query", "attention.self.key",
                             "attention.self.value", "attention.output.dense"})
        needed.push_back({p + proj.str() + ".weight", {d, d}});
      needed.push_back({p + "intermediate.dense.weight", {ff, d}});
      needed.push_back({p + "intermediate.dense.bias", {ff}});
      needed.push_back({p + "output.dense.weight", {d, ff}});
      for (StringRef vec :
           {"attention.self.query.bias", "attention.self.key.bias",
            "attention.self.value.bias", "attention.output.dense.bias",
            "attention.output.LayerNorm.weight",
            "attention.output.LayerNorm.bias", "output.dense.bias",
            "output.LayerNorm.weight", "output.LayerNorm.bias"})
        needed.push_back({p + vec.str(), {d}});
    }
    for (auto &[name, shape] : needed)
      if (Error e = check(name, shape))
        return std::move(e);
    return std::move(checkpoint);
  }
  uint64_t d = c.hiddenSize, q = c.heads * c.headDim,
           kv = c.kvHeads * c.headDim, ff = c.intermediateSize, v = c.vocabSize;
  std::vector<std::pair<std::string, std::vector<uint64_t>>> needed = {
      {"model.embed_tokens.weight", {v, d}}, {"model.norm.weight", {d}}};
  if (!c.tieWordEmbeddings)
    needed.push_back({"lm_head.weight", {v, d}});
  for (int64_t i = 0; i < c.layers; ++i) {
    std::string p = "model.layers." + std::to_string(i) + ".";
    needed.push_back({p + "input_layernorm.weight", {d}});
    needed.push_back({p + "self_attn.q_proj.weight", {q, d}});
    needed.push_back({p + "self_attn.k_proj.weight", {kv, d}});
    needed.push_back({p + "self_attn.v_proj.weight", {kv, d}});
    needed.push_back({p + "self_attn.o_proj.weight", {d, q}});
    needed.push_back({p + "post_attention_layernorm.weight", {d}});
    needed.push_back({p + "mlp.gate_proj.weight", {ff, d}});
    needed.push_back({p + "mlp.up_proj.weight", {ff, d}});
    needed.push_back({p + "mlp.down_proj.weight", {d, ff}});
    if (c.modelType == "qwen3") {
      uint64_t hd = c.headDim;
      needed.push_back({p + "self_attn.q_norm.weight", {hd}});
      needed.push_back({p + "self_attn.k_norm.weight", {hd}});
    }
  }
  for (auto &[name, shape] : needed)
    if (Error e = check(name, shape))
      return std::move(e);
  return std::move(checkpoint);
}

} // namespace safetensors
} // namespace kiln
