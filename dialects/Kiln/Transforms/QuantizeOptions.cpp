//===- QuantizeOptions.cpp - what kiln-quantize is asked to do ------------===//

#include "Kiln/Transforms/QuantizeOptions.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/Twine.h"

#include <numeric>

namespace kiln {

static llvm::Error fail(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

bool parseScalarType(llvm::StringRef name, ScalarType &type) {
  if (name == "f32")
    type = ScalarType::F32;
  else if (name == "f16")
    type = ScalarType::F16;
  else if (name == "bf16")
    type = ScalarType::BF16;
  else
    return false;
  return true;
}

llvm::StringRef getScalarTypeName(ScalarType type) {
  switch (type) {
  case ScalarType::F32:
    return "f32";
  case ScalarType::F16:
    return "f16";
  case ScalarType::BF16:
    return "bf16";
  }
  return "";
}

/// The ggml block type with these numbers (ggml's scales and mins are f16).
static const GGMLFormat *findEncodableGGMLFormat(const QuantizeOptions &o) {
  const GGMLFormat *format = findGGMLBlockFormat(o.bits, o.group, !o.symmetric,
                                                 /*superGroup=*/0,
                                                 /*subScaleBits=*/0);
  if (!format || o.scaleType != ScalarType::F16 ||
      !hasGGMLEncoder(format->type))
    return nullptr;
  return format;
}

llvm::Error QuantizeOptions::validate() const {
  if (bits < 2 || bits > 8)
    return fail("quantize: bits=" + llvm::Twine(bits) +
                " is out of range (2..8)");
  // A packed block is a whole number of bytes.
  unsigned minGroup = 8 / std::gcd(8u, bits);
  if (group != 0 && group % minGroup != 0)
    return fail("quantize: group=" + llvm::Twine(group) +
                " at bits=" + llvm::Twine(bits) +
                " is not a whole number of bytes (use a "
                "multiple of " +
                llvm::Twine(minGroup) + ")");
  if (format == QuantizeFormat::GGUF && !findEncodableGGMLFormat(*this))
    return fail("quantize: format=gguf has no ggml block type with bits=" +
                llvm::Twine(bits) + " group=" +
                (group ? llvm::Twine(group) : llvm::Twine("channel")) +
                (symmetric ? " sym" : " asym") +
                " scale=" + getScalarTypeName(scaleType) +
                " (ggml has q4_0, q5_0, q8_0: sym; q4_1, q5_1: asym; group 32, "
                "scale f16)");
  return llvm::Error::success();
}

llvm::Expected<QuantizeOptions> parseQuantizeOptions(llvm::StringRef text) {
  QuantizeOptions options;
  llvm::SmallVector<llvm::StringRef> items;
  text.split(items, ',', /*MaxSplit=*/-1, /*KeepEmpty=*/false);
  for (llvm::StringRef item : items) {
    auto [key, value] = item.trim().split('=');
    bool ok = true;
    if (key == "bits") {
      ok = !value.getAsInteger(10, options.bits);
    } else if (key == "group") {
      if (value == "channel")
        options.group = 0;
      else
        ok = !value.getAsInteger(10, options.group) && options.group > 0;
    } else if (key == "sym" || key == "asym") {
      ok = value.empty() && !item.contains('=');
      options.symmetric = key == "sym";
    } else if (key == "scale") {
      ok = parseScalarType(value, options.scaleType);
    } else if (key == "format") {
      ok = value == "packed" || value == "gguf";
      options.format =
          value == "gguf" ? QuantizeFormat::GGUF : QuantizeFormat::Packed;
    } else {
      return fail("quantize: unknown option '" + item +
                  "' (known: bits=N, group=N|channel, sym, asym, "
                  "scale=f16|bf16|f32, format=packed|gguf)");
    }
    if (!ok)
      return fail("quantize: invalid option '" + item + "'");
  }
  if (llvm::Error e = options.validate())
    return std::move(e);
  return options;
}

uint64_t RowEncoding::rowBytes(int64_t k) const {
  if (ggml)
    return uint64_t(k) / 32 * getGGMLFormat(*ggml).blockBytes;
  return uint64_t(k) / packed.group * packed.blockBytes();
}

void RowEncoding::quantizeRow(const float *values, int64_t k,
                              uint8_t *out) const {
  if (ggml)
    quantizeGGMLRow(*ggml, values, k, out);
  else
    quantizePackedRow(packed, values, k, out);
}

llvm::Expected<RowEncoding> chooseRowEncoding(const QuantizeOptions &options,
                                              int64_t k) {
  if (llvm::Error e = options.validate())
    return std::move(e);
  unsigned group = options.group ? options.group : unsigned(k);
  if (k <= 0 || k % group != 0)
    return fail("quantize: group=" + llvm::Twine(group) +
                " does not divide K = " + llvm::Twine(k));
  RowEncoding encoding;
  if (options.format == QuantizeFormat::GGUF) {
    encoding.ggml = findEncodableGGMLFormat(options)->type;
    return encoding;
  }
  QuantizeOptions perRow = options;
  perRow.group = group;
  if (llvm::Error e = perRow.validate())
    return std::move(e);
  encoding.packed = {options.bits, group, options.symmetric, options.scaleType,
                     options.scaleType};
  return encoding;
}

} // namespace kiln
