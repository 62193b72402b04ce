//===- KilnDialect.cpp - kiln dialect and attributes ----------------------===//

#include "Kiln/IR/KilnDialect.h"
#include "Kiln/IR/WeightLayout.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::kiln;

#include "Kiln/IR/KilnDialect.cpp.inc"
#include "Kiln/IR/KilnEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "Kiln/IR/KilnAttrs.cpp.inc"

void KilnDialect::initialize() {
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

namespace {
/// One of ggml's block formats (ggml-common.h) as a #kiln.quant scheme. All
/// of them have an f16 scale and, when asymmetric, an f16 min.
struct GGMLBlockFormat {
  const char *name;
  unsigned bits;
  unsigned group;
  bool hasZero;
  unsigned superGroup;
  unsigned subScaleBits;
};
} // namespace

static constexpr GGMLBlockFormat kGGMLBlockFormats[] = {
    {"Q4_0", 4, 32, false, 0, 0},   {"Q4_1", 4, 32, true, 0, 0},
    {"Q5_0", 5, 32, false, 0, 0},   {"Q5_1", 5, 32, true, 0, 0},
    {"Q8_0", 8, 32, false, 0, 0},   {"Q2_K", 2, 16, true, 256, 4},
    {"Q3_K", 3, 16, false, 256, 6}, {"Q4_K", 4, 32, true, 256, 6},
    {"Q5_K", 5, 32, true, 256, 6},  {"Q6_K", 6, 16, false, 256, 8},
};

/// The ggml block format a scheme describes, or null if it describes none.
static const GGMLBlockFormat *findGGMLBlockFormat(unsigned bits,
                                                  unsigned group,
                                                  Type scaleType,
                                                  Type zeroType,
                                                  unsigned superGroup,
                                                  unsigned subScaleBits) {
  if (!scaleType.isF16() || (zeroType && !zeroType.isF16()))
    return nullptr;
  for (const GGMLBlockFormat &format : kGGMLBlockFormats)
    if (format.bits == bits && format.group == group &&
        format.hasZero == bool(zeroType) && format.superGroup == superGroup &&
        format.subScaleBits == subScaleBits)
      return &format;
  return nullptr;
}

LogicalResult
QuantSchemeAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                        unsigned bits, unsigned group, Type scaleType,
                        Type zeroType, unsigned superGroup,
                        unsigned subScaleBits, QuantLayout layout) {
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
  if (layout == QuantLayout::Rows16 &&
      (!scaleType.isF16() || (zeroType && !zeroType.isF16()) ||
       !::mlir::kiln::findRows16Format(bits, group, bool(zeroType), superGroup,
                                 subScaleBits)))
    return emitError() << "layout = rows16 takes only the ggml formats Q4_0, "
                          "Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K and Q6_K";
  if (layout == QuantLayout::GGUF &&
      !findGGMLBlockFormat(bits, group, scaleType, zeroType, superGroup,
                           subScaleBits)) {
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
         << ", sub_scale_bits = " << subScaleBits << "; expected one of";
    for (const GGMLBlockFormat &format : kGGMLBlockFormats)
      diag << (&format == kGGMLBlockFormats ? " " : ", ") << format.name;
    diag << " (or layout = packed for Kiln's own layout)";
    return diag;
  }
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
  return shape.blockBytes();
}

//===----------------------------------------------------------------------===//
// SparsityAttr
//===----------------------------------------------------------------------===//

LogicalResult SparsityAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                   SparsityKind kind, unsigned n, unsigned m,
                                   unsigned blockRows, unsigned blockCols,
                                   uint64_t nnz) {
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
