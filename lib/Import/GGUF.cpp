//===- GGUF.cpp - validating reader for GGUF model files ------------------===//
//
// Layout (ggml docs/gguf.md, versions 2 and 3, all integers little-endian):
//
//   header   : magic "GGUF" | u32 version | u64 tensor_count | u64 kv_count
//   metadata : kv_count x { string key | u32 value_type | value }
//   tensors  : tensor_count x { string name | u32 n_dims | u64 dims[n_dims]
//                               | u32 ggml_type | u64 offset }
//   padding  : to general.alignment (default 32)
//   data     : tensor bytes; each offset is relative to the data section
//
// where string = u64 length | bytes (no terminator), and an array value is
// u32 element_type | u64 count | elements.
//
// Every read goes through GGUFReader, which checks the bytes left before it
// touches them, and every untrusted count is multiplied by the smallest
// encoding of one element and compared with the bytes left before anything
// is reserved, so memory use stays proportional to the file size and the
// whole parse is linear in it (plus one sort of the tensors by offset).
//
//===----------------------------------------------------------------------===//

#include "Import/GGUF.h"

#include "Kiln/IR/WeightLayout.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MathExtras.h"

#include <algorithm>
#include <cstring>
#include <numeric>

using namespace kiln;
using namespace kiln::gguf;
using llvm::Error;
using llvm::Expected;
using llvm::StringRef;

//===----------------------------------------------------------------------===//
// Type tables
//===----------------------------------------------------------------------===//

StringRef kiln::gguf::getValueTypeName(ValueType type) {
  switch (type) {
  case ValueType::UInt8:
    return "u8";
  case ValueType::Int8:
    return "i8";
  case ValueType::UInt16:
    return "u16";
  case ValueType::Int16:
    return "i16";
  case ValueType::UInt32:
    return "u32";
  case ValueType::Int32:
    return "i32";
  case ValueType::Float32:
    return "f32";
  case ValueType::Bool:
    return "bool";
  case ValueType::String:
    return "string";
  case ValueType::Array:
    return "array";
  case ValueType::UInt64:
    return "u64";
  case ValueType::Int64:
    return "i64";
  case ValueType::Float64:
    return "f64";
  }
  return "unknown";
}

//===----------------------------------------------------------------------===//
// Value
//===----------------------------------------------------------------------===//

bool Value::isUnsignedIntType(ValueType t) {
  return t == ValueType::UInt8 || t == ValueType::UInt16 ||
         t == ValueType::UInt32 || t == ValueType::UInt64;
}
bool Value::isSignedIntType(ValueType t) {
  return t == ValueType::Int8 || t == ValueType::Int16 ||
         t == ValueType::Int32 || t == ValueType::Int64;
}
bool Value::isFloatType(ValueType t) {
  return t == ValueType::Float32 || t == ValueType::Float64;
}

Value Value::makeUInt(ValueType type, uint64_t v) {
  Value r;
  r.type = type;
  r.bits = v;
  return r;
}
Value Value::makeInt(ValueType type, int64_t v) {
  Value r;
  r.type = type;
  r.bits = uint64_t(v);
  return r;
}
Value Value::makeFloat(ValueType type, double v) {
  Value r;
  r.type = type;
  r.bits = llvm::bit_cast<uint64_t>(v);
  return r;
}
Value Value::makeBool(bool v) {
  Value r;
  r.type = ValueType::Bool;
  r.bits = v;
  return r;
}
Value Value::makeString(std::string v) {
  Value r;
  r.type = ValueType::String;
  r.string = std::move(v);
  return r;
}
Value Value::makeArray(ValueType elementType, std::vector<uint64_t> numbers,
                       std::vector<std::string> strings) {
  Value r;
  r.type = ValueType::Array;
  r.elementType = elementType;
  r.numbers = std::move(numbers);
  r.strings = std::move(strings);
  return r;
}

uint64_t Value::getUInt() const {
  assert(isUnsignedInt() && "not an unsigned integer");
  return bits;
}
int64_t Value::getInt() const {
  assert(isInteger() && "not an integer");
  return int64_t(bits);
}
double Value::getFloat() const {
  assert(isFloat() && "not a float");
  return llvm::bit_cast<double>(bits);
}
bool Value::getBool() const {
  assert(isBool() && "not a bool");
  return bits != 0;
}
StringRef Value::getString() const {
  assert(isString() && "not a string");
  return string;
}
ValueType Value::getElementType() const {
  assert(isArray() && "not an array");
  return elementType;
}
size_t Value::getArraySize() const {
  assert(isArray() && "not an array");
  return elementType == ValueType::String ? strings.size() : numbers.size();
}
Value Value::getArrayElement(size_t i) const {
  assert(i < getArraySize() && "array index out of range");
  if (elementType == ValueType::String)
    return makeString(strings[i]);
  Value r;
  r.type = elementType;
  r.bits = numbers[i];
  return r;
}
llvm::ArrayRef<std::string> Value::getArrayStrings() const {
  assert(isArray() && elementType == ValueType::String &&
         "not a string array");
  return strings;
}

uint64_t TensorInfo::elementCount() const {
  // Validated at parse time not to overflow.
  uint64_t n = 1;
  for (uint64_t d : dims)
    n *= d;
  return n;
}

//===----------------------------------------------------------------------===//
// GGUFReader: the bounds-checked cursor and the validation
//===----------------------------------------------------------------------===//

namespace kiln {
namespace gguf {

class GGUFReader {
public:
  GGUFReader(GGUFFile &file)
      : file(file),
        data(reinterpret_cast<const uint8_t *>(file.buffer->getBufferStart())),
        size(file.buffer->getBufferSize()) {}

  Error read();

private:
  using FieldFn = llvm::function_ref<std::string()>;

  // Smallest encodings, used to bound untrusted counts by the bytes left.
  // A metadata pair: key length (8) + a 1-byte key + type (4) + a 1-byte
  // value. A tensor info: name length (8) + a 1-byte name + n_dims (4) + one
  // dimension (8) + type (4) + offset (8).
  static constexpr uint64_t kMinKeyValueBytes = 8 + 1 + 4 + 1;
  static constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;

  uint64_t remaining() const { return size - pos; }

  Error fail(uint64_t offset, const std::string &field,
             const llvm::Twine &problem) const {
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        llvm::Twine(file.filePath) + ": " + field + " at offset " +
            llvm::Twine(offset) + ": " + problem);
  }

  Error truncated(uint64_t bytes, FieldFn field) const {
    return fail(pos, field(),
                llvm::formatv("truncated: needs {0} bytes, {1} left in the "
                              "{2}-byte file",
                              bytes, remaining(), size)
                    .str());
  }

  template <typename T> Expected<T> readInt(FieldFn field) {
    static_assert(std::is_integral_v<T>, "integers only");
    if (remaining() < sizeof(T))
      return truncated(sizeof(T), field);
    using U = std::make_unsigned_t<T>;
    U v = llvm::support::endian::read<U, llvm::endianness::little>(data + pos);
    pos += sizeof(T);
    return T(v);
  }

  Expected<std::string> readString(FieldFn field, uint64_t maxLength,
                                   bool allowEmpty);
  Expected<Value> readScalar(ValueType type, FieldFn field);
  Expected<Value> readValue(ValueType type, const std::string &field);
  Error readHeader(uint64_t &tensorCount, uint64_t &kvCount);
  Error readMetadata(uint64_t kvCount);
  Error readTensorInfos(uint64_t tensorCount);
  Error checkTensorData();

  GGUFFile &file;
  const uint8_t *data;
  uint64_t size;
  uint64_t pos = 0;
  uint64_t totalDataBytes = 0;
};

} // namespace gguf
} // namespace kiln

static std::string quote(StringRef s) {
  // Names come from the file: print them escaped and bounded so a hostile
  // name cannot flood or garble the message.
  std::string out = "'";
  llvm::raw_string_ostream os(out);
  llvm::printEscapedString(s.take_front(80), os);
  if (s.size() > 80)
    os << "...";
  os << "'";
  return out;
}

Expected<std::string> GGUFReader::readString(FieldFn field, uint64_t maxLength,
                                             bool allowEmpty) {
  uint64_t start = pos;
  auto length = readInt<uint64_t>([&] { return field() + " length"; });
  if (!length)
    return length.takeError();
  if (*length > remaining())
    return fail(start, field() + " length",
                llvm::formatv("string length {0} exceeds the {1} bytes left "
                              "in the file",
                              *length, remaining())
                    .str());
  if (*length > maxLength)
    return fail(start, field() + " length",
                llvm::formatv("length {0} exceeds the limit of {1} bytes",
                              *length, maxLength)
                    .str());
  if (*length == 0 && !allowEmpty)
    return fail(start, field(), "must not be empty");
  std::string s(reinterpret_cast<const char *>(data + pos), *length);
  pos += *length;
  return s;
}

Expected<Value> GGUFReader::readScalar(ValueType type, FieldFn field) {
  switch (type) {
  case ValueType::UInt8: {
    auto v = readInt<uint8_t>(field);
    return v ? Expected<Value>(Value::makeUInt(type, *v)) : v.takeError();
  }
  case ValueType::Int8: {
    auto v = readInt<int8_t>(field);
    return v ? Expected<Value>(Value::makeInt(type, *v)) : v.takeError();
  }
  case ValueType::UInt16: {
    auto v = readInt<uint16_t>(field);
    return v ? Expected<Value>(Value::makeUInt(type, *v)) : v.takeError();
  }
  case ValueType::Int16: {
    auto v = readInt<int16_t>(field);
    return v ? Expected<Value>(Value::makeInt(type, *v)) : v.takeError();
  }
  case ValueType::UInt32: {
    auto v = readInt<uint32_t>(field);
    return v ? Expected<Value>(Value::makeUInt(type, *v)) : v.takeError();
  }
  case ValueType::Int32: {
    auto v = readInt<int32_t>(field);
    return v ? Expected<Value>(Value::makeInt(type, *v)) : v.takeError();
  }
  case ValueType::UInt64: {
    auto v = readInt<uint64_t>(field);
    return v ? Expected<Value>(Value::makeUInt(type, *v)) : v.takeError();
  }
  case ValueType::Int64: {
    auto v = readInt<int64_t>(field);
    return v ? Expected<Value>(Value::makeInt(type, *v)) : v.takeError();
  }
  case ValueType::Float32: {
    auto v = readInt<uint32_t>(field);
    if (!v)
      return v.takeError();
    return Value::makeFloat(type, double(llvm::bit_cast<float>(*v)));
  }
  case ValueType::Float64: {
    auto v = readInt<uint64_t>(field);
    if (!v)
      return v.takeError();
    return Value::makeFloat(type, llvm::bit_cast<double>(*v));
  }
  case ValueType::Bool: {
    // gguf.md: a bool is one byte, 0 or 1. Anything else is corruption.
    uint64_t start = pos;
    auto v = readInt<uint8_t>(field);
    if (!v)
      return v.takeError();
    if (*v > 1)
      return fail(start, field(),
                  llvm::formatv("bool value {0} is neither 0 nor 1", *v).str());
    return Value::makeBool(*v);
  }
  case ValueType::String: {
    auto s = readString(field, UINT64_MAX, /*allowEmpty=*/true);
    return s ? Expected<Value>(Value::makeString(std::move(*s)))
             : s.takeError();
  }
  case ValueType::Array:
    break;
  }
  llvm_unreachable("readScalar called with an array or unchecked type");
}

static bool isKnownValueType(uint32_t raw) {
  return raw <= uint32_t(ValueType::Float64);
}

/// Bytes of the smallest encoding of one value of a scalar type.
static uint64_t minScalarBytes(ValueType type) {
  switch (type) {
  case ValueType::UInt8:
  case ValueType::Int8:
  case ValueType::Bool:
    return 1;
  case ValueType::UInt16:
  case ValueType::Int16:
    return 2;
  case ValueType::UInt32:
  case ValueType::Int32:
  case ValueType::Float32:
    return 4;
  case ValueType::UInt64:
  case ValueType::Int64:
  case ValueType::Float64:
  case ValueType::String: // the u64 length of an empty string
    return 8;
  case ValueType::Array:
    break;
  }
  return 12; // element type + count of an empty array
}

Expected<Value> GGUFReader::readValue(ValueType type,
                                      const std::string &field) {
  if (type != ValueType::Array)
    return readScalar(type, [&] { return field + " value"; });

  uint64_t typeOffset = pos;
  auto rawElement =
      readInt<uint32_t>([&] { return field + " array element type"; });
  if (!rawElement)
    return rawElement.takeError();
  if (!isKnownValueType(*rawElement))
    return fail(typeOffset, field + " array element type",
                llvm::formatv("unknown value type {0}", *rawElement).str());
  auto elementType = ValueType(*rawElement);
  // gguf.md allows nested arrays, but no model uses them and they make the
  // parse recursive; Kiln accepts one level.
  if (elementType == ValueType::Array)
    return fail(typeOffset, field + " array element type",
                "arrays of arrays are not supported");

  uint64_t countOffset = pos;
  auto count = readInt<uint64_t>([&] { return field + " array length"; });
  if (!count)
    return count.takeError();
  uint64_t minBytes = minScalarBytes(elementType);
  if (*count > remaining() / minBytes)
    return fail(countOffset, field + " array length",
                llvm::formatv("{0} elements of type {1} cannot fit in the {2} "
                              "bytes left in the file",
                              *count, getValueTypeName(elementType),
                              remaining())
                    .str());

  std::vector<uint64_t> numbers;
  std::vector<std::string> strings;
  uint64_t n = *count;
  auto elementField = [&](uint64_t i) {
    return field + " array element #" + std::to_string(i);
  };
  if (elementType == ValueType::String) {
    strings.reserve(n);
    for (uint64_t i = 0; i < n; ++i) {
      auto s = readString([&] { return elementField(i); }, UINT64_MAX,
                          /*allowEmpty=*/true);
      if (!s)
        return s.takeError();
      strings.push_back(std::move(*s));
    }
  } else {
    numbers.reserve(n);
    for (uint64_t i = 0; i < n; ++i) {
      auto v = readScalar(elementType, [&] { return elementField(i); });
      if (!v)
        return v.takeError();
      // Elements share Value's scalar encoding; re-read the raw payload.
      Value scalar = std::move(*v);
      uint64_t bits;
      if (scalar.isFloat())
        bits = llvm::bit_cast<uint64_t>(scalar.getFloat());
      else if (scalar.isBool())
        bits = scalar.getBool();
      else
        bits = uint64_t(scalar.getInt());
      numbers.push_back(bits);
    }
  }
  return Value::makeArray(elementType, std::move(numbers), std::move(strings));
}

Error GGUFReader::readHeader(uint64_t &tensorCount, uint64_t &kvCount) {
  if (size < 4)
    return truncated(4, [] { return std::string("magic"); });
  // gguf.md: the magic is the bytes 'G' 'G' 'U' 'F' (0x46554747 read as a
  // little-endian u32).
  if (std::memcmp(data, "GGUF", 4) != 0)
    return fail(0, "magic",
                llvm::formatv("bad magic 0x{0:x-2}{1:x-2}{2:x-2}{3:x-2}, "
                              "expected \"GGUF\"",
                              data[0], data[1], data[2], data[3])
                    .str());
  pos = 4;

  auto version = readInt<uint32_t>([] { return std::string("version"); });
  if (!version)
    return version.takeError();
  switch (*version) {
  case 2:
  case 3: // v3 only added big-endian files, which announce themselves below.
    break;
  case 0:
    return fail(4, "version", "version 0 is invalid");
  case 1:
    return fail(4, "version",
                "version 1 is not supported (it used 32-bit counts and "
                "lengths); re-convert the model to GGUF v3");
  default:
    if (llvm::byteswap(*version) == 2 || llvm::byteswap(*version) == 3)
      return fail(4, "version",
                  llvm::formatv("version {0} is a byte-swapped {1}: "
                                "big-endian files are not supported",
                                *version, llvm::byteswap(*version))
                      .str());
    return fail(4, "version",
                llvm::formatv("unknown version {0} (supported: 2, 3)",
                              *version)
                    .str());
  }
  file.fileVersion = *version;

  uint64_t tensorCountOffset = pos;
  auto tc = readInt<uint64_t>([] { return std::string("tensor_count"); });
  if (!tc)
    return tc.takeError();
  uint64_t kvCountOffset = pos;
  auto kc = readInt<uint64_t>([] { return std::string("metadata_kv_count"); });
  if (!kc)
    return kc.takeError();

  // Bound both counts by what the rest of the file could encode before any
  // allocation depends on them.
  uint64_t left = remaining();
  if (*tc > left / kMinTensorInfoBytes)
    return fail(tensorCountOffset, "tensor_count",
                llvm::formatv("{0} tensors cannot fit in the {1} bytes left in "
                              "the file",
                              *tc, left)
                    .str());
  if (*kc > left / kMinKeyValueBytes)
    return fail(kvCountOffset, "metadata_kv_count",
                llvm::formatv("{0} key/value pairs cannot fit in the {1} bytes "
                              "left in the file",
                              *kc, left)
                    .str());
  if (*tc * kMinTensorInfoBytes + *kc * kMinKeyValueBytes > left)
    return fail(tensorCountOffset, "tensor_count",
                llvm::formatv("{0} tensors and {1} key/value pairs cannot fit "
                              "in the {2} bytes left in the file",
                              *tc, *kc, left)
                    .str());
  tensorCount = *tc;
  kvCount = *kc;
  return Error::success();
}

Error GGUFReader::readMetadata(uint64_t kvCount) {
  file.keyValues.reserve(kvCount);
  uint64_t alignmentOffset = 0;
  for (uint64_t i = 0; i < kvCount; ++i) {
    uint64_t keyOffset = pos;
    auto key =
        readString([&] { return "metadata key #" + std::to_string(i); },
                   GGUFFile::kMaxNameLength, /*allowEmpty=*/false);
    if (!key)
      return key.takeError();
    std::string field = "metadata " + quote(*key);
    if (!file.keyIndex.try_emplace(*key, file.keyValues.size()).second)
      return fail(keyOffset, field, "duplicate key");

    uint64_t typeOffset = pos;
    auto rawType = readInt<uint32_t>([&] { return field + " value type"; });
    if (!rawType)
      return rawType.takeError();
    if (!isKnownValueType(*rawType))
      return fail(typeOffset, field + " value type",
                  llvm::formatv("unknown value type {0}", *rawType).str());

    if (*key == "general.alignment")
      alignmentOffset = pos;
    auto value = readValue(ValueType(*rawType), field);
    if (!value)
      return value.takeError();
    file.keyValues.push_back({std::move(*key), std::move(*value)});
  }

  // gguf.md: general.alignment is a u32, a power of two; Kiln also caps it
  // so that padding cannot be used to claim megabytes of nothing.
  if (const Value *alignment = file.find("general.alignment")) {
    std::string field = "metadata 'general.alignment'";
    if (alignment->getType() != ValueType::UInt32)
      return fail(alignmentOffset, field,
                  "has type " + getValueTypeName(alignment->getType()) +
                      ", expected u32");
    uint64_t a = alignment->getUInt();
    if (a == 0 || !llvm::isPowerOf2_64(a) || a > GGUFFile::kMaxAlignment)
      return fail(alignmentOffset, field,
                  llvm::formatv("alignment {0} must be a power of two in "
                                "[1, {1}]",
                                a, GGUFFile::kMaxAlignment)
                      .str());
    file.dataAlignment = a;
  }
  return Error::success();
}

Error GGUFReader::readTensorInfos(uint64_t tensorCount) {
  file.tensorInfos.reserve(tensorCount);
  for (uint64_t i = 0; i < tensorCount; ++i) {
    uint64_t nameOffset = pos;
    auto name = readString([&] { return "tensor #" + std::to_string(i) +
                                        " name"; },
                           GGUFFile::kMaxNameLength, /*allowEmpty=*/false);
    if (!name)
      return name.takeError();
    std::string field = "tensor " + quote(*name);
    if (!file.tensorIndex.try_emplace(*name, file.tensorInfos.size()).second)
      return fail(nameOffset, field + " name", "duplicate tensor name");

    uint64_t nDimsOffset = pos;
    auto nDims = readInt<uint32_t>([&] { return field + " n_dims"; });
    if (!nDims)
      return nDims.takeError();
    if (*nDims == 0 || *nDims > GGUFFile::kMaxDims)
      return fail(nDimsOffset, field + " n_dims",
                  llvm::formatv("n_dims {0} is outside [1, {1}] "
                                "(GGML_MAX_DIMS)",
                                *nDims, GGUFFile::kMaxDims)
                      .str());

    TensorInfo info;
    info.name = std::move(*name);
    uint64_t elements = 1;
    for (uint32_t d = 0; d < *nDims; ++d) {
      uint64_t dimOffset = pos;
      auto dimField = [&] { return field + " dims[" + std::to_string(d) + "]"; };
      auto dim = readInt<uint64_t>(dimField);
      if (!dim)
        return dim.takeError();
      // ggml keeps dimensions and element counts in int64_t.
      if (*dim == 0 || *dim > uint64_t(INT64_MAX))
        return fail(dimOffset, dimField(),
                    llvm::formatv("dimension {0} is outside [1, 2^63)", *dim)
                        .str());
      auto product = checkedMul(elements, *dim);
      if (!product || *product > uint64_t(INT64_MAX))
        return fail(dimOffset, dimField(),
                    "element count overflows a signed 64-bit integer");
      elements = *product;
      info.dims.push_back(*dim);
    }

    uint64_t typeOffset = pos;
    auto rawType = readInt<uint32_t>([&] { return field + " type"; });
    if (!rawType)
      return rawType.takeError();
    const GGMLFormat *format = findGGMLFormat(*rawType);
    if (!format)
      return fail(typeOffset, field + " type",
                  llvm::formatv("unknown ggml type {0}", *rawType).str());
    if (!format->readable)
      return fail(typeOffset, field + " type",
                  llvm::formatv("unsupported ggml type {0} ({1})",
                                format->name, *rawType)
                      .str());
    info.type = TensorType(*rawType);
    // A row is stored as whole blocks (ggml_row_size); the innermost
    // dimension must therefore be a multiple of the block.
    if (info.dims[0] % format->blockValues != 0)
      return fail(typeOffset, field + " dims[0]",
                  llvm::formatv("innermost dimension {0} is not a multiple of "
                                "the {1}-value block of {2}",
                                info.dims[0], format->blockValues,
                                format->name)
                      .str());
    auto byteSize = checkedMul(elements / format->blockValues,
                               format->blockBytes);
    if (!byteSize)
      return fail(typeOffset, field + " byte size",
                  llvm::formatv("{0} elements of {1} overflow a 64-bit byte "
                                "size",
                                elements, format->name)
                      .str());
    info.byteSize = *byteSize;
    auto total = checkedAdd(totalDataBytes, info.byteSize);
    if (!total)
      return fail(typeOffset, field + " byte size",
                  "total tensor data size overflows 64 bits");
    totalDataBytes = *total;

    uint64_t offsetOffset = pos;
    auto offset = readInt<uint64_t>([&] { return field + " offset"; });
    if (!offset)
      return offset.takeError();
    if (*offset % file.dataAlignment != 0)
      return fail(offsetOffset, field + " offset",
                  llvm::formatv("data offset {0} is not a multiple of the "
                                "alignment {1}",
                                *offset, file.dataAlignment)
                      .str());
    info.dataOffset = *offset;
    file.tensorInfos.push_back(std::move(info));
  }
  return Error::success();
}

Error GGUFReader::checkTensorData() {
  // The data section starts at the first aligned offset after the tensor
  // infos (gguf.md). pos <= size and alignment <= 1 MiB, so no overflow.
  uint64_t dataStart = llvm::alignTo(pos, file.dataAlignment);
  file.dataSectionOffset = dataStart;
  if (file.tensorInfos.empty())
    return Error::success();
  if (dataStart > size)
    return fail(pos, "data section",
                llvm::formatv("truncated: the data section would start at "
                              "offset {0}, past the end of the {1}-byte file",
                              dataStart, size)
                    .str());
  uint64_t dataSize = size - dataStart;
  if (totalDataBytes > dataSize)
    return fail(dataStart, "data section",
                llvm::formatv("truncated: tensors need {0} bytes, the data "
                              "section has {1}",
                              totalDataBytes, dataSize)
                    .str());
  for (TensorInfo &info : file.tensorInfos) {
    if (info.dataOffset > dataSize || info.byteSize > dataSize - info.dataOffset)
      return fail(dataStart, "tensor " + quote(info.name) + " offset",
                  llvm::formatv("data range [{0}, {0}+{1}) lies past the end "
                                "of the {2}-byte data section (truncated "
                                "file or bad offset)",
                                info.dataOffset, info.byteSize, dataSize)
                      .str());
    info.fileOffset = dataStart + info.dataOffset;
  }

  std::vector<size_t> order(file.tensorInfos.size());
  std::iota(order.begin(), order.end(), 0);
  llvm::sort(order, [&](size_t a, size_t b) {
    return file.tensorInfos[a].dataOffset < file.tensorInfos[b].dataOffset;
  });
  for (size_t i = 1; i < order.size(); ++i) {
    const TensorInfo &prev = file.tensorInfos[order[i - 1]];
    const TensorInfo &cur = file.tensorInfos[order[i]];
    if (prev.dataOffset + prev.byteSize > cur.dataOffset)
      return fail(cur.fileOffset, "tensor " + quote(cur.name) + " offset",
                  llvm::formatv("data range [{0}, {1}) overlaps tensor {2} at "
                                "[{3}, {4})",
                                cur.dataOffset, cur.dataOffset + cur.byteSize,
                                quote(prev.name), prev.dataOffset,
                                prev.dataOffset + prev.byteSize)
                      .str());
  }
  return Error::success();
}

Error GGUFReader::read() {
  uint64_t tensorCount = 0, kvCount = 0;
  if (Error e = readHeader(tensorCount, kvCount))
    return e;
  if (Error e = readMetadata(kvCount))
    return e;
  if (Error e = readTensorInfos(tensorCount))
    return e;
  return checkTensorData();
}

//===----------------------------------------------------------------------===//
// GGUFFile
//===----------------------------------------------------------------------===//

Expected<GGUFFile> GGUFFile::open(StringRef path) {
  // Not volatile, no terminator: large files are mmapped read-only.
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                            /*RequiresNullTerminator=*/false,
                                            /*IsVolatile=*/false);
  if (!buffer)
    return llvm::createStringError(buffer.getError(),
                                   llvm::Twine(path) + ": cannot open: " +
                                       buffer.getError().message());
  return parse(std::move(*buffer));
}

Expected<GGUFFile> GGUFFile::parse(std::unique_ptr<llvm::MemoryBuffer> buffer) {
  GGUFFile file;
  file.filePath = buffer->getBufferIdentifier().str();
  file.buffer = std::move(buffer);
  GGUFReader reader(file);
  if (Error e = reader.read())
    return std::move(e);
  return std::move(file);
}

const Value *GGUFFile::find(StringRef key) const {
  auto it = keyIndex.find(key);
  return it == keyIndex.end() ? nullptr : &keyValues[it->second].value;
}

Error GGUFFile::lookupError(StringRef key, StringRef problem) const {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 llvm::Twine(filePath) + ": metadata key '" +
                                     key + "' " + problem);
}

Expected<const Value *> GGUFFile::lookup(StringRef key) const {
  if (const Value *v = find(key))
    return v;
  return lookupError(key, "is missing");
}

static std::string typeDescription(const Value &v) {
  if (!v.isArray())
    return getValueTypeName(v.getType()).str();
  return ("array of " + getValueTypeName(v.getElementType())).str();
}

Expected<uint64_t> GGUFFile::getUInt(StringRef key) const {
  auto v = lookup(key);
  if (!v)
    return v.takeError();
  const Value &value = **v;
  if (value.isUnsignedInt())
    return value.getUInt();
  if (value.isSignedInt() && value.getInt() >= 0)
    return uint64_t(value.getInt());
  if (value.isSignedInt())
    return lookupError(key, "is negative (" + std::to_string(value.getInt()) +
                                "), expected an unsigned integer");
  return lookupError(key, "has type " + typeDescription(value) +
                              ", expected an integer");
}

Expected<double> GGUFFile::getFloat(StringRef key) const {
  auto v = lookup(key);
  if (!v)
    return v.takeError();
  if ((*v)->isFloat())
    return (*v)->getFloat();
  return lookupError(key, "has type " + typeDescription(**v) +
                              ", expected f32 or f64");
}

Expected<StringRef> GGUFFile::getString(StringRef key) const {
  auto v = lookup(key);
  if (!v)
    return v.takeError();
  if ((*v)->isString())
    return (*v)->getString();
  return lookupError(key,
                     "has type " + typeDescription(**v) + ", expected string");
}

Expected<bool> GGUFFile::getBool(StringRef key) const {
  auto v = lookup(key);
  if (!v)
    return v.takeError();
  if ((*v)->isBool())
    return (*v)->getBool();
  return lookupError(key,
                     "has type " + typeDescription(**v) + ", expected bool");
}

Expected<std::vector<std::string>>
GGUFFile::getStringArray(StringRef key) const {
  auto v = lookup(key);
  if (!v)
    return v.takeError();
  const Value &value = **v;
  if (!value.isArray() || value.getElementType() != ValueType::String)
    return lookupError(key, "has type " + typeDescription(value) +
                                ", expected array of string");
  llvm::ArrayRef<std::string> strings = value.getArrayStrings();
  return std::vector<std::string>(strings.begin(), strings.end());
}

Expected<std::vector<int64_t>> GGUFFile::getIntArray(StringRef key) const {
  auto v = lookup(key);
  if (!v)
    return v.takeError();
  const Value &value = **v;
  if (!value.isArray() || !(Value::isUnsignedIntType(value.getElementType()) ||
                            Value::isSignedIntType(value.getElementType())))
    return lookupError(key, "has type " + typeDescription(value) +
                                ", expected array of integers");
  std::vector<int64_t> out;
  out.reserve(value.getArraySize());
  bool isUnsigned = Value::isUnsignedIntType(value.getElementType());
  for (size_t i = 0, e = value.getArraySize(); i < e; ++i) {
    Value element = value.getArrayElement(i);
    if (isUnsigned && element.getUInt() > uint64_t(INT64_MAX))
      return lookupError(key, "element #" + std::to_string(i) + " (" +
                                  std::to_string(element.getUInt()) +
                                  ") does not fit in int64");
    out.push_back(element.getInt());
  }
  return out;
}

Expected<std::vector<double>> GGUFFile::getFloatArray(StringRef key) const {
  auto v = lookup(key);
  if (!v)
    return v.takeError();
  const Value &value = **v;
  if (!value.isArray() || !Value::isFloatType(value.getElementType()))
    return lookupError(key, "has type " + typeDescription(value) +
                                ", expected array of f32 or f64");
  std::vector<double> out;
  out.reserve(value.getArraySize());
  for (size_t i = 0, e = value.getArraySize(); i < e; ++i)
    out.push_back(value.getArrayElement(i).getFloat());
  return out;
}

const TensorInfo *GGUFFile::findTensor(StringRef name) const {
  auto it = tensorIndex.find(name);
  return it == tensorIndex.end() ? nullptr : &tensorInfos[it->second];
}

llvm::ArrayRef<uint8_t> GGUFFile::tensorData(const TensorInfo &info) const {
  // Ranges were validated at parse time; recheck so that a TensorInfo from
  // another file cannot read outside this mapping.
  uint64_t size = buffer->getBufferSize();
  if (info.fileOffset > size || info.byteSize > size - info.fileOffset)
    return {};
  return {reinterpret_cast<const uint8_t *>(buffer->getBufferStart()) +
              info.fileOffset,
          size_t(info.byteSize)};
}
