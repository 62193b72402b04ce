//===- QuantizeOptions.cpp - what kiln-quantize is asked to do ------------===//

#include "Kiln/Transforms/QuantizeOptions.h"

#include "Kiln/Transforms/GPTQ.h"

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
    } else if (key == "rtn" || key == "gptq" || key == "awq") {
      ok = value.empty() && !item.contains('=');
      options.method = key == "rtn"    ? QuantizeMethod::RTN
                       : key == "gptq" ? QuantizeMethod::GPTQ
                                       : QuantizeMethod::AWQ;
    } else if (key == "damp") {
      ok = !value.getAsDouble(options.damping) && options.damping > 0 &&
           options.damping < 1;
    } else if (key == "budget") {
      ok = !value.getAsDouble(options.budget) && options.budget > 0 &&
           options.budget <= 32;
    } else if (key == "stats") {
      ok = !value.empty();
      options.statisticsPath = value.str();
    } else {
      return fail("quantize: unknown option '" + item +
                  "' (known: bits=N, group=N|channel, sym, asym, "
                  "scale=f16|bf16|f32, format=packed|gguf, rtn, gptq, awq, "
                  "damp=F, stats=FILE, budget=BPW)");
    }
    if (!ok)
      return fail("quantize: invalid option '" + item + "'");
  }
  if (llvm::Error e = options.validate())
    return std::move(e);
  if (options.method != QuantizeMethod::RTN && options.statisticsPath.empty())
    return fail(llvm::Twine("quantize: ") +
                (options.method == QuantizeMethod::GPTQ ? "gptq" : "awq") +
                " needs calibration statistics: stats=FILE (kiln-run "
                "--collect-stats)");
  return options;
}

uint64_t RowEncoding::rowBytes(int64_t k) const {
  if (ggml)
    return uint64_t(k) / 32 * getGGMLFormat(*ggml).blockBytes;
  return uint64_t(k) / packed.group * packed.blockBytes();
}

void RowEncoding::quantizeRow(const float *values, int64_t k, uint8_t *out,
                              RoundingFeedback *feedback) const {
  if (ggml)
    quantizeGGMLRow(*ggml, values, k, out, feedback);
  else
    quantizePackedRow(packed, values, k, out, feedback);
}

llvm::Error MatrixQuantizer::quantize(const RowEncoding &encoding,
                                      const float *values, int64_t rows,
                                      int64_t k, llvm::StringRef name,
                                      uint8_t *out) {
  const uint64_t rowBytes = encoding.rowBytes(k);
  // AWQ has scaled the float weights already (kiln-quantize); what is left
  // is rounding.
  if (options.method != QuantizeMethod::GPTQ) {
    for (int64_t r = 0; r < rows; ++r)
      encoding.quantizeRow(values + r * k, k, out + r * rowBytes);
    return llvm::Error::success();
  }
  std::optional<InputStatisticsView> stats =
      options.statistics ? options.statistics(name) : std::nullopt;
  if (!stats)
    return fail("gptq: the calibration statistics have no input for " +
                name + " (collected from another model?)");
  if (stats->cols != k)
    return fail("gptq: the calibration statistics of " + name + " are " +
                llvm::Twine(stats->cols) + " wide, the weight's K is " +
                llvm::Twine(k));
  auto cached = factors.find(stats->hessian);
  if (cached == factors.end()) {
    llvm::Expected<std::vector<double>> factor =
        factorInverseHessian(stats->hessian, k, options.damping);
    if (!factor)
      return fail(name + ": " + llvm::toString(factor.takeError()));
    cached = factors.emplace(stats->hessian, std::move(*factor)).first;
  }
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t *rowOut = out + r * rowBytes;
    quantizeRowGPTQ(
        [&](const float *row, RoundingFeedback *feedback) {
          encoding.quantizeRow(row, k, rowOut, feedback);
        },
        values + r * k, k, cached->second);
  }
  return llvm::Error::success();
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
