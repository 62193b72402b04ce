//===- SafetensorsTest.cpp - hostile safetensors files and configs --------===//
//
// Every case builds its file in memory, so each test names exactly one defect
// and checks the one-line error it must produce (file, field, offset).
//
//===----------------------------------------------------------------------===//

#include "Import/Safetensors.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include "gtest/gtest.h"

#include <cstring>

using namespace kiln::safetensors;

namespace {

/// An 8-byte little-endian length, the header, then the data.
std::string makeFile(llvm::StringRef header, llvm::StringRef data = "",
                     std::optional<uint64_t> lengthField = std::nullopt) {
  uint64_t n = lengthField ? *lengthField : header.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i)
    out[i] = char((n >> (8 * i)) & 0xff);
  out += header;
  out += data;
  return out;
}

llvm::Expected<SafetensorsFile> parseBytes(const std::string &bytes) {
  return SafetensorsFile::parse(
      llvm::MemoryBuffer::getMemBufferCopy(bytes, "model.safetensors"));
}

/// The error message of a parse that must fail ("" if it succeeded).
std::string parseError(const std::string &bytes) {
  auto file = parseBytes(bytes);
  if (file)
    return "";
  return llvm::toString(file.takeError());
}

const char *kTwoTensors =
    R"({"__metadata__":{"format":"pt"},)"
    R"("b":{"dtype":"F16","shape":[2],"data_offsets":[8,12]},)"
    R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";

TEST(Safetensors, ValidFileParses) {
  std::string data = "AAAABBBBcccc";
  auto file = parseBytes(makeFile(kTwoTensors, data));
  ASSERT_TRUE(bool(file)) << llvm::toString(file.takeError());
  ASSERT_EQ(file->tensors().size(), 2u);
  EXPECT_EQ(file->tensors()[0].name, "a");
  const TensorInfo *b = file->findTensor("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dtype, DType::F16);
  EXPECT_EQ(b->shape, std::vector<uint64_t>{2});
  llvm::ArrayRef<uint8_t> bytes = file->tensorData(*b);
  EXPECT_EQ(llvm::StringRef(reinterpret_cast<const char *>(bytes.data()),
                            bytes.size()),
            "cccc");
  EXPECT_EQ(file->metadata().at("format"), "pt");
  EXPECT_EQ(file->findTensor("__metadata__"), nullptr);
}

TEST(Safetensors, TooShortForTheLength) {
  EXPECT_EQ(parseError(std::string("\x05\x00\x00", 3)),
            "model.safetensors: header length at offset 0: truncated: needs 8 "
            "bytes, the file has 3");
}

TEST(Safetensors, HeaderLengthAbove100MB) {
  EXPECT_EQ(parseError(makeFile("{}", "", 100'000'001)),
            "model.safetensors: header length at offset 0: 100000001 bytes "
            "exceeds the 100000000-byte limit");
}

TEST(Safetensors, HeaderLengthMaxUInt64) {
  EXPECT_EQ(parseError(makeFile("{}", "", UINT64_MAX)),
            "model.safetensors: header length at offset 0: "
            "18446744073709551615 bytes exceeds the 100000000-byte limit");
}

TEST(Safetensors, HeaderLengthBeyondTheFile) {
  EXPECT_EQ(parseError(makeFile("{}", "", 50)),
            "model.safetensors: header length at offset 0: 50 bytes runs past "
            "the end of the 10-byte file (truncated)");
}

TEST(Safetensors, HeaderNotUTF8) {
  EXPECT_EQ(parseError(makeFile("{\"a\xff\":{}}")),
            "model.safetensors: header at offset 11: is not valid UTF-8");
}

TEST(Safetensors, HeaderNotJSON) {
  std::string err = parseError(makeFile("{\"a\": nope}"));
  EXPECT_TRUE(llvm::StringRef(err).starts_with(
      "model.safetensors: header at offset 8: is not valid JSON: "))
      << err;
}

TEST(Safetensors, HeaderNotAnObject) {
  EXPECT_EQ(parseError(makeFile("[1, 2]")),
            "model.safetensors: header at offset 8: does not start with '{' "
            "(not a JSON object)");
}

/// `levels` arrays in each other: "[[...]]".
std::string nestedArrays(size_t levels) {
  return std::string(levels, '[') + std::string(levels, ']');
}

// llvm::json::parse recurses once per level: 100000 levels overflowed the
// stack (SIGSEGV). The header is refused where level 65 opens: the '{' is
// level 1, so the 64th '[' (the header's byte 5 + 63, file offset 76).
TEST(Safetensors, HeaderNestedTooDeep) {
  for (size_t levels : {64, 100000})
    EXPECT_EQ(parseError(makeFile("{\"a\":" + nestedArrays(levels) + "}")),
              "model.safetensors: header at offset 76: nests deeper than 64 "
              "levels");
  // 64 levels in all parse: the error is about the tensor, not the depth.
  EXPECT_EQ(parseError(makeFile("{\"a\":" + nestedArrays(63) + "}")),
            "model.safetensors: tensor 'a' at offset 9: is not a JSON object");
  // Brackets in strings do not count, escaped quotes included.
  std::string metadata =
      "{\"__metadata__\":{\"k\":\"\\\"" + std::string(100, '[') + "\"}}";
  EXPECT_EQ(parseError(makeFile(metadata)), "");
}

TEST(Safetensors, DuplicateTensorName) {
  std::string entry = R"({"dtype":"U8","shape":[1],"data_offsets":[0,1]})";
  std::string header = "{\"a\":" + entry + ",\"a\":" + entry + "}";
  EXPECT_EQ(parseError(makeFile(header, "x")),
            "model.safetensors: header at offset " +
                std::to_string(8 + header.rfind("\"a\"")) +
                ": duplicate key \"a\"");
  // The same name spelled with an escape is still the same key.
  std::string escaped = "{\"a\":" + entry + ",\"\\u0061\":" + entry + "}";
  EXPECT_EQ(parseError(makeFile(escaped, "x")),
            "model.safetensors: header at offset 8: has a duplicate key "
            "(spelled with escapes)");
}

TEST(Safetensors, UnknownDType) {
  std::string err = parseError(makeFile(
      R"({"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,1]}})", "x"));
  EXPECT_TRUE(llvm::StringRef(err).starts_with(
      "model.safetensors: tensor 'w' dtype at offset 9: unknown dtype 'Q4'"))
      << err;
}

TEST(Safetensors, MissingFields) {
  EXPECT_EQ(parseError(makeFile(R"({"w":{"dtype":"U8","shape":[1]}})", "x")),
            "model.safetensors: tensor 'w' data_offsets at offset 9: is "
            "missing or not an array of two integers");
  EXPECT_EQ(
      parseError(makeFile(R"({"w":{"dtype":"U8","data_offsets":[0,1]}})", "x")),
      "model.safetensors: tensor 'w' shape at offset 9: is missing or not an "
      "array");
  EXPECT_EQ(parseError(makeFile(R"({"w":[0,1]})", "x")),
            "model.safetensors: tensor 'w' at offset 9: is not a JSON object");
}

TEST(Safetensors, OffsetsPastTheEnd) {
  EXPECT_EQ(
      parseError(makeFile(
          R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", "xx")),
      "model.safetensors: tensor 'w' data_offsets at offset 9: [0, 4] runs "
      "past the end of the 2-byte data section");
}

TEST(Safetensors, OffsetsPastTheEndAtMaxUInt64) {
  EXPECT_EQ(parseError(makeFile(R"({"w":{"dtype":"U8","shape":[1],)"
                                R"("data_offsets":[18446744073709551614,)"
                                R"(18446744073709551615]}})",
                                "x")),
            "model.safetensors: tensor 'w' data_offsets at offset 9: "
            "[18446744073709551614, 18446744073709551615] runs past the end "
            "of the 1-byte data section");
}

TEST(Safetensors, OffsetsReversed) {
  EXPECT_EQ(
      parseError(makeFile(
          R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[1,0]}})", "x")),
      "model.safetensors: tensor 'w' data_offsets at offset 9: [1, 0] ends "
      "before it begins");
}

TEST(Safetensors, NegativeOrFractionalOffsets) {
  EXPECT_EQ(
      parseError(makeFile(
          R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}})", "x")),
      "model.safetensors: tensor 'w' data_offsets at offset 9: is not an "
      "array of two non-negative integers");
  EXPECT_EQ(
      parseError(makeFile(
          R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,0.5]}})", "x")),
      "model.safetensors: tensor 'w' data_offsets at offset 9: is not an "
      "array of two non-negative integers");
}

TEST(Safetensors, OverlappingRanges) {
  std::string header =
      R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
      R"("b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})";
  std::string err = parseError(makeFile(header, "xxxxxx"));
  EXPECT_EQ(err, "model.safetensors: tensor 'b' data_offsets at offset " +
                     std::to_string(8 + header.size() + 2) +
                     ": [2, 6] overlaps tensor 'a' ending at 4");
}

TEST(Safetensors, SameRangeTwice) {
  std::string header =
      R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
      R"("b":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})";
  std::string err = parseError(makeFile(header, "xx"));
  EXPECT_NE(err.find("[0, 2] overlaps tensor 'a' ending at 2"),
            std::string::npos)
      << err;
}

TEST(Safetensors, GapBetweenTensors) {
  std::string header =
      R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
      R"("b":{"dtype":"U8","shape":[2],"data_offsets":[3,5]}})";
  EXPECT_EQ(parseError(makeFile(header, "xxxxx")),
            "model.safetensors: tensor 'b' data_offsets at offset " +
                std::to_string(8 + header.size() + 2) +
                ": [3, 5] leaves a gap of 1 bytes after 'a'");
}

TEST(Safetensors, GapAtTheStart) {
  std::string header =
      R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}})";
  EXPECT_EQ(parseError(makeFile(header, "xxx")),
            "model.safetensors: tensor 'a' data_offsets at offset " +
                std::to_string(8 + header.size()) +
                ": [1, 3] leaves a gap of 1 bytes after the header");
}

TEST(Safetensors, TrailingBytesAfterTheLastTensor) {
  std::string header =
      R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})";
  EXPECT_EQ(parseError(makeFile(header, "xxxx")),
            "model.safetensors: data section at offset " +
                std::to_string(8 + header.size() + 2) +
                ": 2 bytes after the last tensor belong to no tensor");
}

TEST(Safetensors, ShapeDoesNotMatchTheByteRange) {
  EXPECT_EQ(
      parseError(makeFile(
          R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})",
          std::string(20, 'x'))),
      "model.safetensors: tensor 'w' shape at offset 9: [2x3] of F32 needs "
      "24 bytes, data_offsets [0, 20] hold 20");
}

TEST(Safetensors, ShapeElementCountOverflows) {
  std::string err = parseError(
      makeFile(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],)"
               R"("data_offsets":[0,0]}})"));
  EXPECT_NE(err.find("needs more than 2^64 bytes"), std::string::npos) << err;
}

TEST(Safetensors, ShapeWithNegativeDimension) {
  EXPECT_EQ(parseError(makeFile(
                R"({"w":{"dtype":"U8","shape":[2,-1],"data_offsets":[0,0]}})")),
            "model.safetensors: tensor 'w' shape[1] at offset 9: is not a "
            "non-negative integer");
}

TEST(Safetensors, ShapeTooManyDimensions) {
  std::string err = parseError(makeFile(
      R"({"w":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}})",
      "x"));
  EXPECT_NE(err.find("has 9 dimensions, at most 8"), std::string::npos) << err;
}

TEST(Safetensors, UnknownTensorField) {
  std::string err = parseError(makeFile(
      R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1}})", "x"));
  EXPECT_NE(err.find("has unknown field 'x'"), std::string::npos) << err;
}

TEST(Safetensors, MetadataNotAnObject) {
  EXPECT_EQ(parseError(makeFile(R"({"__metadata__":[1]})")),
            "model.safetensors: __metadata__ at offset 9: is not a JSON "
            "object of strings");
}

TEST(Safetensors, MetadataValueNotAString) {
  EXPECT_EQ(parseError(makeFile(R"({"__metadata__":{"step":3}})")),
            "model.safetensors: __metadata__ 'step' at offset 9: is not a "
            "string (the format allows only strings here)");
}

TEST(Safetensors, EmptyFileWithOnlyMetadataIsValid) {
  auto file = parseBytes(makeFile(R"({"__metadata__":{}})"));
  ASSERT_TRUE(bool(file)) << llvm::toString(file.takeError());
  EXPECT_TRUE(file->tensors().empty());
}

TEST(Safetensors, PickleAndZipBytesAreRefused) {
  std::string pickle = "\x80\x02}q\x00(X\x01\x00\x00\x00";
  EXPECT_NE(parseError(pickle).find("unpickling can execute arbitrary code"),
            std::string::npos);
  std::string zip = "PK\x03\x04 archive/data.pkl ....";
  EXPECT_NE(parseError(zip).find("pickle or zip (PyTorch) checkpoint"),
            std::string::npos);
  EXPECT_TRUE(hasPickleMagic(llvm::arrayRefFromStringRef(pickle)));
  EXPECT_FALSE(hasPickleMagic(
      llvm::arrayRefFromStringRef(llvm::StringRef(makeFile("{}")))));
}

/// A scratch directory removed at the end of the test.
class TempDir : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("kiln-st", dir));
  }
  void TearDown() override { llvm::sys::fs::remove_directories(dir); }
  std::string write(llvm::StringRef name, llvm::StringRef bytes) {
    llvm::SmallString<128> p(dir);
    llvm::sys::path::append(p, name);
    std::error_code ec;
    llvm::raw_fd_ostream os(p, ec);
    EXPECT_FALSE(ec);
    os << bytes;
    return std::string(p);
  }
  llvm::SmallString<128> dir;
};

TEST_F(TempDir, PickleCheckpointsAreRefusedByExtensionAndMagic) {
  for (const char *name : {"pytorch_model.bin", "model.pt", "model.PTH"}) {
    std::string path = write(name, "anything");
    std::string err = llvm::toString(refusePickleCheckpoint(path));
    EXPECT_NE(err.find("PyTorch pickle checkpoint; Kiln refuses pickle-based "
                       "checkpoints because unpickling can execute arbitrary "
                       "code"),
              std::string::npos)
        << err;
  }
  std::string zip = write("weights.model", "PK\x03\x04rest");
  EXPECT_NE(llvm::toString(refusePickleCheckpoint(zip))
                .find("is a zip (PyTorch) checkpoint"),
            std::string::npos);
  std::string fine = write("model.safetensors", makeFile("{}"));
  EXPECT_FALSE(bool(refusePickleCheckpoint(fine)));
}

const char *kConfig = R"({
  "model_type": "llama", "architectures": ["LlamaForCausalLM"],
  "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
  "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 4,
  "max_position_embeddings": 32, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
  "tie_word_embeddings": true, "hidden_act": "silu", "rope_scaling": null})";

std::string configWith(llvm::StringRef key, llvm::StringRef value) {
  std::string c = kConfig;
  size_t at = c.find("\"" + key.str() + "\"");
  if (at == std::string::npos)
    return c;
  size_t colon = c.find(':', at), end = c.find_first_of(",}", colon);
  if (value.empty()) // remove the key
    return c.erase(at, end + 1 - at);
  return c.replace(colon + 1, end - colon - 1, " " + value.str());
}

std::string configError(const std::string &text) {
  auto config = parseLlamaConfig(text, "config.json");
  return config ? "" : llvm::toString(config.takeError());
}

TEST(LlamaConfig, ValidConfig) {
  auto config = parseLlamaConfig(kConfig, "config.json");
  ASSERT_TRUE(bool(config)) << llvm::toString(config.takeError());
  EXPECT_EQ(config->headDim, 4);
  EXPECT_EQ(config->kvHeads, 1);
  EXPECT_TRUE(config->tieWordEmbeddings);
}

TEST(LlamaConfig, HostileConfigs) {
  EXPECT_NE(configError("{").find("config.json: config: is not valid JSON"),
            std::string::npos);
  EXPECT_EQ(configError(configWith("hidden_size", "")),
            "config.json: hidden_size: is missing");
  EXPECT_EQ(configError(configWith("hidden_size", "\"8\"")),
            "config.json: hidden_size: is not an integer");
  EXPECT_EQ(configError(configWith("model_type", "\"gpt2\"")),
            "config.json: model_type: 'gpt2' is not supported (llama, "
            "mistral, qwen2, qwen3)");
  EXPECT_EQ(configError(configWith("num_attention_heads", "3")),
            "config.json: num_attention_heads: 3 does not divide hidden_size "
            "8");
  EXPECT_EQ(configError(configWith("num_key_value_heads", "0")),
            "config.json: num_key_value_heads: 0 is out of range [1, 4096]");
  EXPECT_EQ(configError(configWith("num_key_value_heads", "3")),
            "config.json: num_key_value_heads: 3 does not divide "
            "num_attention_heads 2");
  EXPECT_EQ(configError(configWith("rms_norm_eps", "-1")),
            "config.json: rms_norm_eps: is not a positive finite number");
  EXPECT_EQ(
      configError(configWith("rope_scaling", R"({"type":"yarn","factor":4})")),
      "config.json: rope_scaling: is not supported yet (only null)");
  EXPECT_EQ(configError(configWith("hidden_act", "\"gelu\"")),
            "config.json: hidden_act: is not \"silu\" (the SwiGLU of Llama)");
}

// As the safetensors header: llvm::json::parse overflowed the stack on
// 100000 levels. The 64th '[' after `{"x":` (byte 68) opens level 65.
TEST(LlamaConfig, NestedTooDeep) {
  for (size_t levels : {64, 100000})
    EXPECT_EQ(configError("{\"x\":" + nestedArrays(levels) + "}"),
              "config.json: config: nests deeper than 64 levels (at byte 68)");
  EXPECT_EQ(configError(configWith("rope_scaling", nestedArrays(63))),
            "config.json: rope_scaling: is not supported yet (only null)");
}

/// A complete 1-layer checkpoint matching kConfig, F32 except one BF16 norm.
std::string tinyCheckpoint(const std::string &overrideName = "",
                           const std::string &overrideShape = "") {
  std::vector<std::pair<std::string, std::vector<int>>> tensors = {
      {"model.embed_tokens.weight", {4, 8}},
      {"model.norm.weight", {8}},
      {"model.layers.0.input_layernorm.weight", {8}},
      {"model.layers.0.self_attn.q_proj.weight", {8, 8}},
      {"model.layers.0.self_attn.k_proj.weight", {4, 8}},
      {"model.layers.0.self_attn.v_proj.weight", {4, 8}},
      {"model.layers.0.self_attn.o_proj.weight", {8, 8}},
      {"model.layers.0.post_attention_layernorm.weight", {8}},
      {"model.layers.0.mlp.gate_proj.weight", {16, 8}},
      {"model.layers.0.mlp.up_proj.weight", {16, 8}},
      {"model.layers.0.mlp.down_proj.weight", {8, 16}},
  };
  std::string header = "{";
  uint64_t offset = 0;
  for (auto &[name, shape] : tensors) {
    uint64_t n = 4;
    std::string dims;
    for (int d : shape) {
      n *= d;
      dims += (dims.empty() ? "" : ",") + std::to_string(d);
    }
    if (name == overrideName)
      dims = overrideShape, n = 4 * 4; // the override always holds 4 values
    header += (header.size() > 1 ? "," : "") + ("\"" + name + "\"") +
              ":{\"dtype\":\"F32\",\"shape\":[" + dims +
              "],\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(offset + n) + "]}";
    offset += n;
  }
  header += "}";
  return makeFile(header, std::string(offset, '\0'));
}

TEST_F(TempDir, CheckpointDirectoryValidates) {
  write("config.json", kConfig);
  write("model.safetensors", tinyCheckpoint());
  auto ckpt = openCheckpoint(dir);
  ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
  EXPECT_EQ(ckpt->config.layers, 1);
  ASSERT_EQ(ckpt->shards.size(), 1u);
  EXPECT_EQ(ckpt->shards[0].tensors().size(), 11u);
}

TEST_F(TempDir, CheckpointTensorShapeContradictsConfig) {
  write("config.json", kConfig);
  write("model.safetensors",
        tinyCheckpoint("model.layers.0.self_attn.k_proj.weight", "2,2"));
  auto ckpt = openCheckpoint(dir);
  ASSERT_FALSE(bool(ckpt));
  std::string err = llvm::toString(ckpt.takeError());
  EXPECT_NE(err.find("tensor 'model.layers.0.self_attn.k_proj.weight' at "
                     "offset "),
            std::string::npos)
      << err;
  EXPECT_NE(err.find(": shape 2x2, expected 4x8 from config.json"),
            std::string::npos)
      << err;
}

TEST_F(TempDir, CheckpointMissingTensorOrConfig) {
  write("model.safetensors", tinyCheckpoint());
  auto noConfig = openCheckpoint(dir);
  ASSERT_FALSE(bool(noConfig));
  EXPECT_NE(
      llvm::toString(noConfig.takeError()).find("config.json: cannot open"),
      std::string::npos);
  // An untied model needs lm_head.weight.
  write("config.json", configWith("tie_word_embeddings", "false"));
  auto untied = openCheckpoint(dir);
  ASSERT_FALSE(bool(untied));
  EXPECT_NE(llvm::toString(untied.takeError())
                .find("missing tensor 'lm_head.weight'"),
            std::string::npos);
}

TEST_F(TempDir, CheckpointDirectoryWithOnlyAPickle) {
  write("config.json", kConfig);
  write("pytorch_model.bin", "PK\x03\x04");
  auto ckpt = openCheckpoint(dir);
  ASSERT_FALSE(bool(ckpt));
  EXPECT_NE(llvm::toString(ckpt.takeError()).find("arbitrary code"),
            std::string::npos);
}

constexpr const char *kBertConfig =
    "{\"model_type\": \"bert\", \"hidden_size\": 384, "
    "\"intermediate_size\": 1536, \"num_hidden_layers\": 6, "
    "\"num_attention_heads\": 12, \"vocab_size\": 30522, "
    "\"max_position_embeddings\": 512, \"type_vocab_size\": 2, "
    "\"layer_norm_eps\": 1e-12, \"hidden_act\": \"gelu\"}";

TEST(BertConfig, ValidConfig) {
  auto config = parseBertConfig(kBertConfig, "config.json");
  ASSERT_TRUE(bool(config)) << llvm::toString(config.takeError());
  EXPECT_EQ(config->hiddenSize, 384);
  EXPECT_EQ(config->heads, 12);
  EXPECT_EQ(config->typeVocabSize, 2);
  EXPECT_DOUBLE_EQ(config->layerNormEps, 1e-12);
  EXPECT_FALSE(config->normalize);
}

TEST(BertConfig, HostileConfigs) {
  auto errorOf = [](std::string from, std::string to) {
    std::string text = kBertConfig;
    size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
    auto config = parseBertConfig(text, "config.json");
    EXPECT_FALSE(bool(config)) << text;
    return config ? std::string() : llvm::toString(config.takeError());
  };
  EXPECT_EQ(errorOf("\"gelu\"", "\"relu\""),
            "config.json: hidden_act: 'relu' is not supported (gelu)");
  EXPECT_EQ(errorOf("\"num_attention_heads\": 12",
                    "\"num_attention_heads\": 7"),
            "config.json: num_attention_heads: 7 does not divide hidden_size "
            "384");
  EXPECT_EQ(errorOf("\"type_vocab_size\": 2, ", ""),
            "config.json: type_vocab_size: is missing or not an integer");
  EXPECT_EQ(errorOf("\"hidden_size\": 384", "\"hidden_size\": 0"),
            "config.json: hidden_size: 0 is out of range [1, 1048576]");
}

} // namespace
