//===- QuantizeOptions.cpp - what kiln-quantize is asked to do ------------===//

#include "Kiln/Transforms/QuantizeOptions.h"

#include "Kiln/Transforms/GPTQ.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/Twine.h"

#include <cstdio>
#include <numeric>

namespace kiln {

static llvm::Error fail(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

/// A number as the user wrote it (1.5, not 1.500000).
static std::string formatNumber(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%g", value);
  return text;
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

bool parseQuantizeMethod(llvm::StringRef name, QuantizeMethod &method) {
  if (name == "rtn")
    method = QuantizeMethod::RTN;
  else if (name == "gptq")
    method = QuantizeMethod::GPTQ;
  else if (name == "awq")
    method = QuantizeMethod::AWQ;
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
  if (searchScales && format == QuantizeFormat::GGUF)
    return fail("quantize: search is for Kiln's packed format (format=gguf "
                "keeps llama.cpp's rounding)");
  if (!(damping > 0 && damping < 1))
    return fail("quantize: damp=" + formatNumber(damping) +
                " is out of range (0, 1)");
  if (!(budget >= 0 && budget <= 32))
    return fail("quantize: budget=" + formatNumber(budget) +
                " is out of range (0, 32] bits per weight");
  if (method != QuantizeMethod::RTN && statisticsPath.empty() && !statistics)
    return fail(llvm::Twine("quantize: ") +
                (method == QuantizeMethod::GPTQ ? "gptq" : "awq") +
                " needs calibration statistics: stats=FILE (kiln-run "
                "--collect-stats)");
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
    } else if (parseQuantizeMethod(key, options.method)) {
      ok = value.empty() && !item.contains('=');
    } else if (key == "search") {
      ok = value.empty() && !item.contains('=');
      options.searchScales = true;
    } else if (key == "damp") {
      ok = !value.getAsDouble(options.damping);
    } else if (key == "budget") {
      ok = !value.getAsDouble(options.budget) && options.budget > 0;
    } else if (key == "stats") {
      ok = !value.empty();
      options.statisticsPath = value.str();
    } else {
      return fail("quantize: unknown option '" + item +
                  "' (known: bits=N, group=N|channel, sym, asym, "
                  "scale=f16|bf16|f32, format=packed|gguf, rtn, gptq, awq, "
                  "search, damp=F, stats=FILE, budget=BPW)");
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

void RowEncoding::quantizeRow(const float *values, int64_t k, uint8_t *out,
                              RoundingFeedback *feedback,
                              const float *importance) const {
  if (ggml)
    quantizeGGMLRow(*ggml, values, k, out, feedback);
  else
    quantizePackedRow(packed, values, k, out, feedback, importance);
}

std::vector<float> getSearchImportance(const QuantizeOptions &options,
                                       llvm::StringRef name, int64_t k) {
  if (!options.searchScales || !options.statistics ||
      options.method == QuantizeMethod::AWQ)
    return {};
  std::optional<InputStatisticsView> stats = options.statistics(name);
  if (!stats || stats->cols != k)
    return {};
  std::vector<float> diagonal(k);
  for (int64_t j = 0; j < k; ++j)
    diagonal[j] = stats->hessian[j * k + j];
  return diagonal;
}

llvm::Error MatrixQuantizer::quantize(const RowEncoding &encoding,
                                      const float *values, int64_t rows,
                                      int64_t k, llvm::StringRef name,
                                      uint8_t *out) {
  return encodeRows(encoding, values, rows, k, name, out, nullptr);
}

llvm::Error MatrixQuantizer::roundTrip(const RowEncoding &encoding,
                                       const float *values, int64_t rows,
                                       int64_t k, llvm::StringRef name,
                                       double *decoded) {
  return encodeRows(encoding, values, rows, k, name, nullptr, decoded);
}

llvm::Error MatrixQuantizer::encodeRows(const RowEncoding &encoding,
                                        const float *values, int64_t rows,
                                        int64_t k, llvm::StringRef name,
                                        uint8_t *out, double *decoded) {
  const uint64_t rowBytes = encoding.rowBytes(k);
  const std::vector<float> importance = getSearchImportance(options, name, k);
  const float *weights = importance.empty() ? nullptr : importance.data();
  std::vector<uint8_t> scratch(out ? 0 : rowBytes);
  auto rowOut = [&](int64_t r) {
    return out ? out + r * rowBytes : scratch.data();
  };
  // AWQ has scaled the float weights already (kiln-quantize); what is left
  // is rounding.
  if (options.method != QuantizeMethod::GPTQ) {
    for (int64_t r = 0; r < rows; ++r) {
      std::optional<RecordDecoded> record;
      if (decoded)
        record.emplace(decoded + r * k);
      encoding.quantizeRow(values + r * k, k, rowOut(r),
                           record ? &*record : nullptr, weights);
    }
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
    quantizeRowGPTQ(
        [&](const float *row, RoundingFeedback *feedback) {
          if (!decoded)
            return encoding.quantizeRow(row, k, rowOut(r), feedback, weights);
          RecordDecoded record(decoded + r * k, feedback);
          encoding.quantizeRow(row, k, rowOut(r), &record, weights);
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
                     options.scaleType, options.searchScales};
  return encoding;
}

} // namespace kiln
