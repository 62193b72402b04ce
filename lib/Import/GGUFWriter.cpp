//===- GGUFWriter.cpp - write a GGUF file ---------------------------------===//

#include "Import/GGUFWriter.h"

#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/raw_ostream.h"

#include <cstring>

namespace kiln {
namespace gguf {

namespace {

/// GGUF is little-endian; so is every host Kiln runs on (x86-64).
class Encoder {
public:
  explicit Encoder(llvm::raw_ostream &os) : os(os) {}

  template <typename T> void scalar(T value) {
    char bytes[sizeof(T)];
    std::memcpy(bytes, &value, sizeof(T));
    os.write(bytes, sizeof(T));
    written += sizeof(T);
  }
  void string(llvm::StringRef s) {
    scalar<uint64_t>(s.size());
    os << s;
    written += s.size();
  }
  void bytes(llvm::ArrayRef<uint8_t> data) {
    os.write(reinterpret_cast<const char *>(data.data()), data.size());
    written += data.size();
  }
  void padTo(uint64_t alignment) {
    uint64_t target = llvm::alignTo(written, alignment);
    os.write_zeros(target - written);
    written = target;
  }

  /// A scalar of `type` from its Value (integers and floats widened there).
  void scalarValue(ValueType type, const Value &v) {
    switch (type) {
    case ValueType::UInt8:
      return scalar<uint8_t>(v.getUInt());
    case ValueType::Int8:
      return scalar<int8_t>(v.getInt());
    case ValueType::UInt16:
      return scalar<uint16_t>(v.getUInt());
    case ValueType::Int16:
      return scalar<int16_t>(v.getInt());
    case ValueType::UInt32:
      return scalar<uint32_t>(v.getUInt());
    case ValueType::Int32:
      return scalar<int32_t>(v.getInt());
    case ValueType::UInt64:
      return scalar<uint64_t>(v.getUInt());
    case ValueType::Int64:
      return scalar<int64_t>(v.getInt());
    case ValueType::Float32:
      return scalar<float>(float(v.getFloat()));
    case ValueType::Float64:
      return scalar<double>(v.getFloat());
    case ValueType::Bool:
      return scalar<uint8_t>(v.getBool() ? 1 : 0);
    case ValueType::String:
      return string(v.getString());
    case ValueType::Array:
      break; // arrays are one level deep (the reader refuses nesting)
    }
  }

  void value(const Value &v) {
    scalar<uint32_t>(uint32_t(v.getType()));
    if (!v.isArray())
      return scalarValue(v.getType(), v);
    scalar<uint32_t>(uint32_t(v.getElementType()));
    scalar<uint64_t>(v.getArraySize());
    if (v.getElementType() == ValueType::String) {
      for (const std::string &s : v.getArrayStrings())
        string(s);
      return;
    }
    for (size_t i = 0; i < v.getArraySize(); ++i)
      scalarValue(v.getElementType(), v.getArrayElement(i));
  }

private:
  llvm::raw_ostream &os;
  uint64_t written = 0;
};

} // namespace

llvm::Error writeGGUF(llvm::StringRef path, llvm::ArrayRef<KeyValue> metadata,
                      llvm::ArrayRef<TensorToWrite> tensors,
                      uint64_t alignment) {
  auto fail = [&](const llvm::Twine &message) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   path + ": " + message);
  };
  if (alignment == 0 || !llvm::isPowerOf2_64(alignment))
    return fail("alignment must be a power of two");
  // Offsets of the tensors within the data section.
  std::vector<uint64_t> offsets;
  uint64_t dataBytes = 0;
  for (const TensorToWrite &t : tensors) {
    const GGMLFormat *format = findGGMLFormat(uint32_t(t.type));
    if (!format || t.dims.empty() || t.dims[0] % format->blockValues != 0)
      return fail("tensor '" + t.name + "' is not a whole number of blocks");
    uint64_t count = 1;
    for (uint64_t d : t.dims)
      count *= d;
    if (count / format->blockValues * format->blockBytes != t.data.size())
      return fail("tensor '" + t.name + "' has " + llvm::Twine(t.data.size()) +
                  " bytes, not those of its shape and type");
    dataBytes = llvm::alignTo(dataBytes, alignment);
    offsets.push_back(dataBytes);
    dataBytes += t.data.size();
  }
  return llvm::writeToOutput(path, [&](llvm::raw_ostream &os) -> llvm::Error {
    Encoder out(os);
    out.scalar<uint32_t>(0x46554747); // "GGUF"
    out.scalar<uint32_t>(3);
    out.scalar<uint64_t>(tensors.size());
    out.scalar<uint64_t>(metadata.size());
    for (const KeyValue &kv : metadata) {
      out.string(kv.key);
      out.value(kv.value);
    }
    for (auto [t, offset] : llvm::zip(tensors, offsets)) {
      out.string(t.name);
      out.scalar<uint32_t>(t.dims.size());
      for (uint64_t d : t.dims)
        out.scalar<uint64_t>(d);
      out.scalar<uint32_t>(uint32_t(t.type));
      out.scalar<uint64_t>(offset);
    }
    // The data section starts aligned, so padding each tensor to the
    // alignment puts it at its offset.
    for (const TensorToWrite &t : tensors) {
      out.padTo(alignment);
      out.bytes(t.data);
    }
    return llvm::Error::success();
  });
}

} // namespace gguf
} // namespace kiln
