//===- GGUF.h - validating reader for GGUF model files ----------*- C++ -*-===//
//
// The one GGUF reader in Kiln. Model files come from strangers, so the reader
// checks every count, length, type, shape and offset against the bytes that
// are actually in the file before it uses or allocates for them, and reports
// each problem as an llvm::Error naming the file, the field and the byte
// offset. A GGUFFile that was returned successfully is fully validated: every
// tensor's data range lies inside the mapping, is aligned, and overlaps no
// other tensor.
//
// Format: ggml's docs/gguf.md (versions 2 and 3, little-endian). Block sizes
// of the tensor types: Kiln/IR/GGMLFormats.h (from ggml-common.h).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_IMPORT_GGUF_H
#define KILN_IMPORT_GGUF_H

#include "Kiln/IR/GGMLFormats.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kiln {
namespace gguf {

/// Metadata value types (gguf.md, `gguf_metadata_value_type`).
enum class ValueType : uint32_t {
  UInt8 = 0,
  Int8 = 1,
  UInt16 = 2,
  Int16 = 3,
  UInt32 = 4,
  Int32 = 5,
  Float32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
  UInt64 = 10,
  Int64 = 11,
  Float64 = 12,
};

/// Name of a value type ("u32", "string", ...), or "unknown".
llvm::StringRef getValueTypeName(ValueType type);

/// Tensor element types: ggml's numbers, names and block sizes are the table
/// of Kiln/IR/GGMLFormats.h (findGGMLFormat for a raw number).
using TensorType = GGMLType;

/// One metadata value. Scalars are stored widened (integers as 64-bit,
/// floats as double); arrays are homogeneous and one level deep (the reader
/// rejects arrays of arrays), stored compactly: numeric and bool elements in
/// `numbers` with the scalar encoding, strings in `strings`.
class Value {
public:
  static Value makeUInt(ValueType type, uint64_t v);
  static Value makeInt(ValueType type, int64_t v);
  static Value makeFloat(ValueType type, double v);
  static Value makeBool(bool v);
  static Value makeString(std::string v);
  static Value makeArray(ValueType elementType, std::vector<uint64_t> numbers,
                         std::vector<std::string> strings);

  ValueType getType() const { return type; }
  bool isUnsignedInt() const { return isUnsignedIntType(type); }
  bool isSignedInt() const { return isSignedIntType(type); }
  bool isInteger() const { return isUnsignedInt() || isSignedInt(); }
  bool isFloat() const { return isFloatType(type); }
  bool isBool() const { return type == ValueType::Bool; }
  bool isString() const { return type == ValueType::String; }
  bool isArray() const { return type == ValueType::Array; }

  /// Scalar accessors; each requires the matching is*() predicate.
  uint64_t getUInt() const;
  int64_t getInt() const;
  double getFloat() const;
  bool getBool() const;
  llvm::StringRef getString() const;

  /// Array accessors; each requires isArray().
  ValueType getElementType() const;
  size_t getArraySize() const;
  /// Element i as a scalar Value (a copy; strings are copied).
  Value getArrayElement(size_t i) const;
  /// The elements of a string array.
  llvm::ArrayRef<std::string> getArrayStrings() const;

  static bool isUnsignedIntType(ValueType t);
  static bool isSignedIntType(ValueType t);
  static bool isFloatType(ValueType t);

private:
  ValueType type = ValueType::UInt8;
  ValueType elementType = ValueType::UInt8; // arrays only
  uint64_t bits = 0; // integer (two's complement), double bits, or bool
  std::string string;
  std::vector<uint64_t> numbers;
  std::vector<std::string> strings;
};

struct KeyValue {
  std::string key;
  Value value;
};

struct TensorInfo {
  std::string name;
  std::vector<uint64_t> dims; // ggml order: dims[0] is the innermost (K)
  TensorType type;
  uint64_t dataOffset; // relative to the data section
  uint64_t byteSize;
  uint64_t fileOffset; // absolute: data section offset + dataOffset
  uint64_t elementCount() const;
};

/// A parsed, validated GGUF file. Owns the (memory-mapped) bytes; tensorData
/// views stay valid as long as the GGUFFile lives (moving it keeps them).
class GGUFFile {
public:
  /// Default alignment of the data section when `general.alignment` is
  /// absent (gguf.md: GGUF_DEFAULT_ALIGNMENT).
  static constexpr uint64_t kDefaultAlignment = 32;
  /// Limits that are not in the spec but bound the work an attacker can ask
  /// for: ggml's GGML_MAX_DIMS, a ceiling on general.alignment and on the
  /// length of keys and tensor names.
  static constexpr uint32_t kMaxDims = 4;
  static constexpr uint64_t kMaxAlignment = 1u << 20;
  static constexpr uint64_t kMaxNameLength = 1u << 16;

  /// Maps the file at `path` and parses it.
  static llvm::Expected<GGUFFile> open(llvm::StringRef path);
  /// Parses bytes already in memory; errors name the buffer identifier.
  static llvm::Expected<GGUFFile> parse(
      std::unique_ptr<llvm::MemoryBuffer> buffer);

  uint32_t version() const { return fileVersion; }
  uint64_t alignment() const { return dataAlignment; }
  /// Absolute offset of the (aligned) data section.
  uint64_t dataOffset() const { return dataSectionOffset; }

  /// All metadata in file order.
  llvm::ArrayRef<KeyValue> metadata() const { return keyValues; }
  const Value *find(llvm::StringRef key) const; // nullptr if absent

  /// Typed look-ups: an error names the key when it is missing or of another
  /// type. getUInt accepts any integer type whose value is >= 0; getFloat
  /// accepts f32/f64; the array getters accept any integer (resp. f32/f64)
  /// element type.
  llvm::Expected<uint64_t> getUInt(llvm::StringRef key) const;
  llvm::Expected<double> getFloat(llvm::StringRef key) const;
  llvm::Expected<llvm::StringRef> getString(llvm::StringRef key) const;
  llvm::Expected<bool> getBool(llvm::StringRef key) const;
  llvm::Expected<std::vector<std::string>>
  getStringArray(llvm::StringRef key) const;
  llvm::Expected<std::vector<int64_t>> getIntArray(llvm::StringRef key) const;
  llvm::Expected<std::vector<double>> getFloatArray(llvm::StringRef key) const;

  llvm::ArrayRef<TensorInfo> tensors() const { return tensorInfos; }
  const TensorInfo *findTensor(llvm::StringRef name) const;
  /// The tensor's bytes; the range was validated at parse time.
  llvm::ArrayRef<uint8_t> tensorData(const TensorInfo &info) const;

  llvm::StringRef path() const { return filePath; }
  size_t fileSize() const { return buffer->getBufferSize(); }

private:
  friend class GGUFReader;
  GGUFFile() = default;
  llvm::Error lookupError(llvm::StringRef key, llvm::StringRef problem) const;
  llvm::Expected<const Value *> lookup(llvm::StringRef key) const;

  std::unique_ptr<llvm::MemoryBuffer> buffer;
  std::string filePath;
  uint32_t fileVersion = 0;
  uint64_t dataAlignment = kDefaultAlignment;
  uint64_t dataSectionOffset = 0;
  std::vector<KeyValue> keyValues;
  llvm::StringMap<size_t> keyIndex;
  std::vector<TensorInfo> tensorInfos;
  llvm::StringMap<size_t> tensorIndex;
};

} // namespace gguf
} // namespace kiln

#endif // KILN_IMPORT_GGUF_H
