//===- KilnDialect.cpp - kiln dialect and attributes ----------------------===//

#include "Kiln/IR/KilnDialect.h"
#include "Kiln/IR/WeightLayout.h"
#include "Kiln/IR/WeightStore.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/TypeSwitch.h"

#include <cmath>

using namespace mlir;
using namespace mlir::kiln;

#include "Kiln/IR/KilnAttrInterfaces.cpp.inc"
#include "Kiln/IR/KilnDialect.cpp.inc"
#include "Kiln/IR/KilnEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "Kiln/IR/KilnAttrs.cpp.inc"

void KilnDialect::initialize() {
  weightStore = std::make_unique<WeightStore>();
  addAttributes<
#define GET_ATTRDEF_LIST
#include "Kiln/IR/KilnAttrs.cpp.inc"
      >();
  registerTypes();
  addOperations<
#define GET_OP_LIST
#include "Kiln/IR/KilnOps.cpp.inc"
      >();
}

unsigned mlir::kiln::getFloatStorageBytes(Type type) {
  return (type.getIntOrFloatBitWidth() + 7) / 8;
}

static bool isScaleType(Type type) {
  return isa<Float32Type, Float16Type, BFloat16Type, Float8E4M3FNType,
             Float8E5M2Type>(type);
}

//===----------------------------------------------------------------------===//
// QuantSchemeAttr
//===----------------------------------------------------------------------===//

const ::kiln::GGMLFormat *
mlir::kiln::findGGMLBlockFormat(unsigned bits, unsigned group, Type scaleType,
                                Type zeroType, unsigned superGroup,
                                unsigned subScaleBits, QuantCodebook codebook) {
  if (!scaleType.isF16() || (zeroType && !zeroType.isF16()))
    return nullptr;
  // QuantCodebook and GGMLCodebook share their numbers (KilnAttrs.td).
  return ::kiln::findGGMLBlockFormat(bits, group, bool(zeroType), superGroup,
                                     subScaleBits,
                                     ::kiln::GGMLCodebook(uint32_t(codebook)));
}

const ::kiln::GGMLFormat *
mlir::kiln::findGGMLBlockFormat(QuantSchemeAttr scheme) {
  return findGGMLBlockFormat(scheme.getBits(), scheme.getGroup(),
                             scheme.getScaleType(), scheme.getZeroType(),
                             scheme.getSuperGroup(), scheme.getSubScaleBits(),
                             scheme.getCodebook());
}

LogicalResult
QuantSchemeAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                        unsigned bits, unsigned group, Type scaleType,
                        Type zeroType, unsigned superGroup,
                        unsigned subScaleBits, QuantLayout layout,
                        QuantCodebook codebook,
                        WeightLayoutAttrInterface targetLayout) {
  if (bits < 2 || bits > 8)
    return emitError() << "quantization bit width " << bits
                       << " is out of range [2, 8]";
  if (group == 0)
    return emitError() << "quantization group size must be positive";
  if ((uint64_t(group) * bits) % 8 != 0 && superGroup == 0)
    return emitError() << "group of " << group << " values at " << bits
                       << " bits does not fill whole bytes";
  if (!isScaleType(scaleType))
    return emitError() << "scale type " << scaleType
                       << " must be f32, f16, bf16, f8E4M3FN or f8E5M2";
  if (zeroType && !isScaleType(zeroType) && !zeroType.isInteger(8) &&
      !zeroType.isInteger(bits))
    return emitError() << "zero type " << zeroType
                       << " must be a float scale type or an integer of "
                          "the code width";
  if (superGroup != 0) {
    if (superGroup % group != 0)
      return emitError() << "super-group " << superGroup
                         << " is not a multiple of group " << group;
    if (subScaleBits < 2 || subScaleBits > 8)
      return emitError() << "sub-scale width " << subScaleBits
                         << " is out of range [2, 8]";
    uint64_t subGroups = superGroup / group;
    if ((subGroups * subScaleBits * (zeroType ? 2 : 1)) % 8 != 0)
      return emitError() << "sub-scales of " << subGroups << " groups at "
                         << subScaleBits << " bits do not fill whole bytes";
    if ((uint64_t(superGroup) * bits) % 8 != 0)
      return emitError() << "super-group of " << superGroup << " values at "
                         << bits << " bits does not fill whole bytes";
  } else if (subScaleBits != 0) {
    return emitError() << "sub_scale_bits needs a super_group";
  }
  if (codebook != QuantCodebook::None && layout != QuantLayout::GGUF)
    return emitError() << "codebook = " << stringifyQuantCodebook(codebook)
                       << " is a ggml format's: it needs layout = gguf";
  const ::kiln::GGMLFormat *ggml = findGGMLBlockFormat(
      bits, group, scaleType, zeroType, superGroup, subScaleBits, codebook);
  if (layout == QuantLayout::GGUF && !ggml) {
    // Print types as the attribute writes them, not quoted.
    auto typeText = [](Type type) {
      std::string text;
      llvm::raw_string_ostream os(text);
      if (type)
        os << type;
      else
        os << "none";
      return text;
    };
    InFlightDiagnostic diag = emitError();
    diag << "layout = gguf but no ggml block format has bits = " << bits
         << ", group = " << group << ", scale = " << typeText(scaleType)
         << ", zero = " << typeText(zeroType)
         << ", super_group = " << superGroup
         << ", sub_scale_bits = " << subScaleBits
         << ", codebook = " << stringifyQuantCodebook(codebook)
         << "; expected one of";
    const char *separator = " ";
    for (const ::kiln::GGMLFormat &format : ::kiln::kGGMLFormats) {
      if (!format.isQuantScheme())
        continue;
      diag << separator << StringRef(format.name).upper();
      separator = ", ";
    }
    diag << " (or layout = packed for Kiln's own layout)";
    return diag;
  }
  // The target's layout judges the scheme as a whole; get() does not
  // verify, so this does not recurse.
  if (targetLayout)
    return targetLayout.verifyScheme(
        emitError,
        QuantSchemeAttr::get(scaleType.getContext(), bits, group, scaleType,
                             zeroType, superGroup, subScaleBits, layout,
                             codebook, targetLayout));
  return success();
}

uint64_t QuantSchemeAttr::getBlockBytes() const {
  ::kiln::QuantBlockShape shape;
  shape.bits = getBits();
  shape.group = getGroup();
  shape.scaleBytes = getFloatStorageBytes(getScaleType());
  shape.zeroBytes = getZeroType() ? (getZeroType().getIntOrFloatBitWidth() + 7) / 8 : 0;
  shape.superGroup = getSuperGroup();
  shape.subScaleBits = getSubScaleBits();
  if (const ::kiln::GGMLFormat *ggml = findGGMLBlockFormat(*this);
      ggml && !ggml->hasGeneralBlock())
    shape.fixedBlockBytes = ggml->blockBytes;
  return shape.blockBytes();
}

//===----------------------------------------------------------------------===//
// RopeAttr
//===----------------------------------------------------------------------===//

LogicalResult RopeAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                               int64_t heads, int64_t headDim, int64_t rotary,
                               RopeStyle, APFloat freqBaseValue,
                               APFloat freqScaleValue,
                               DenseF32ArrayAttr freqFactors,
                               APFloat magnitudeValue) {
  float freqBase = freqBaseValue.convertToFloat(),
        freqScale = freqScaleValue.convertToFloat(),
        magnitude = magnitudeValue.convertToFloat();
  if (heads <= 0 || headDim <= 0)
    return emitError() << "num_heads and head_dim must be positive, got "
                       << heads << " and " << headDim;
  int64_t width;
  if (__builtin_mul_overflow(heads, headDim, &width))
    return emitError() << "num_heads * head_dim = " << heads << " * "
                       << headDim << " overflows 64 bits";
  if (rotary <= 0 || rotary > headDim || rotary % 2 != 0)
    return emitError() << "rotary_dim " << rotary
                       << " must be even and in (0, head_dim = " << headDim
                       << "]";
  if (!(freqBase > 0.0f) || !std::isfinite(freqBase))
    return emitError() << "freq_base must be positive, got " << freqBase;
  if (!(freqScale > 0.0f) || !std::isfinite(freqScale))
    return emitError() << "freq_scale must be positive, got " << freqScale;
  if (freqFactors) {
    if (int64_t(freqFactors.size()) != rotary / 2)
      return emitError() << "freq_factors has " << freqFactors.size()
                         << " values, expected rotary_dim / 2 = " << rotary / 2;
    for (float f : freqFactors.asArrayRef())
      if (!(f > 0.0f) || !std::isfinite(f))
        return emitError() << "freq_factors must be positive, got " << f;
  }
  if (!(magnitude > 0.0f) || !std::isfinite(magnitude))
    return emitError() << "magnitude must be positive, got " << magnitude;
  return success();
}

//===----------------------------------------------------------------------===//
// SparsityAttr
//===----------------------------------------------------------------------===//

LogicalResult SparsityAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                   SparsityKind kind, unsigned n, unsigned m,
                                   unsigned blockRows, unsigned blockCols,
                                   uint64_t nnz, bool dense) {
  switch (kind) {
  case SparsityKind::NM:
    if (m < 2 || n == 0 || n >= m)
      return emitError() << "N:M sparsity needs 0 < n < m, got " << n << ":"
                         << m;
    if (blockRows || blockCols || nnz)
      return emitError() << "N:M sparsity takes only n and m";
    return success();
  case SparsityKind::Block:
    if (blockRows == 0 || blockCols == 0)
      return emitError() << "block sparsity needs positive block_rows and "
                            "block_cols";
    if (n || m)
      return emitError() << "block sparsity takes no n or m";
    return success();
  case SparsityKind::Bitmap:
  case SparsityKind::CSR:
    if (n || m || blockRows || blockCols)
      return emitError() << "unstructured sparsity takes only nnz";
    return success();
  }
  return success();
}
