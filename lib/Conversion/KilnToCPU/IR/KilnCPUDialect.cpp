//===- KilnCPUDialect.cpp - the CPU target's weight layouts ---------------===//

#include "Conversion/KilnToCPU/IR/KilnCPUDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::kiln;

#include "Conversion/KilnToCPU/IR/KilnCPUDialect.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "Conversion/KilnToCPU/IR/KilnCPUAttrs.cpp.inc"

void KilnCPUDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "Conversion/KilnToCPU/IR/KilnCPUAttrs.cpp.inc"
      >();
}

std::optional<Rows16Float> mlir::kiln::rows16FloatOf(Type type) {
  if (type.isF16())
    return Rows16Float::F16;
  if (type.isBF16())
    return Rows16Float::BF16;
  if (type.isF32())
    return Rows16Float::F32;
  return std::nullopt;
}

/// The rows16 form of `scheme`: Kiln's packed layout with float scales (and
/// zeros) in groups of 32-value chunks, or the ggml format whose numbers a
/// gguf scheme has.
static const Rows16Format *rows16FormOf(QuantSchemeAttr scheme) {
  if (scheme.getLayout() == QuantLayout::Packed) {
    std::optional<Rows16Float> scale = rows16FloatOf(scheme.getScaleType());
    std::optional<Rows16Float> zero;
    if (Type zeroType = scheme.getZeroType())
      if (!(zero = rows16FloatOf(zeroType)))
        return nullptr;
    if (!scale || scheme.getSuperGroup() ||
        scheme.getCodebook() != QuantCodebook::None)
      return nullptr;
    return findPackedRows16Format(scheme.getBits(), scheme.getGroup(), *scale,
                                  zero);
  }
  const ::kiln::GGMLFormat *ggml = findGGMLBlockFormat(scheme);
  return ggml ? findRows16Format(ggml->type) : nullptr;
}

const Rows16Format *mlir::kiln::findRows16Format(WeightType type) {
  QuantSchemeAttr q = type.getQuant();
  // A pruned weight still stored dense (`dense = true`) is read as an
  // unpruned one: the sparse kernels' dense fallback.
  if (!q || type.getCompressedSparsity())
    return nullptr;
  return rows16FormOf(q);
}

bool mlir::kiln::isRows16(WeightType type) {
  QuantSchemeAttr q = type.getQuant();
  return q && q.getTargetLayout() && isa<Rows16LayoutAttr>(q.getTargetLayout());
}

//===----------------------------------------------------------------------===//
// Rows16LayoutAttr: WeightLayoutAttrInterface
//===----------------------------------------------------------------------===//

StringRef Rows16LayoutAttr::getLayoutName() const { return "rows16"; }

LogicalResult
Rows16LayoutAttr::verifyScheme(function_ref<InFlightDiagnostic()> emitError,
                               QuantSchemeAttr scheme) const {
  // rows16 rearranges ggml's blocks and Kiln's packed groups; the kernels
  // decode nothing else.
  if ((scheme.getLayout() == QuantLayout::GGUF ||
       scheme.getLayout() == QuantLayout::Packed) &&
      rows16FormOf(scheme))
    return success();
  SmallVector<std::string> names;
  for (const ::kiln::GGMLFormat &format : ::kiln::kGGMLFormats)
    if (format.isQuantScheme() && findRows16Format(format.type))
      names.push_back(StringRef(format.name).upper());
  std::string last = names.pop_back_val();
  return emitError() << "target_layout = #kiln_cpu.rows16 takes only the "
                        "ggml formats "
                     << llvm::join(names, ", ") << " and " << last
                     << " in layout = gguf, and layout = packed with f16, "
                        "bf16 or f32 scales and zeros in groups of 32 to 256 "
                        "values";
}

std::optional<uint64_t>
Rows16LayoutAttr::getStorageBytes(QuantSchemeAttr scheme, uint64_t rows,
                                  uint64_t k) const {
  const Rows16Format *format = rows16FormOf(scheme);
  if (!format)
    return std::nullopt;
  return rows16Bytes(*format, rows, k);
}

// The int8 kernels read every rows16 form (Rows16.h), Q6_K's scale per 16
// values included.
bool Rows16LayoutAttr::takesQuantizedActivations(QuantSchemeAttr scheme) const {
  return rows16FormOf(scheme) != nullptr;
}
