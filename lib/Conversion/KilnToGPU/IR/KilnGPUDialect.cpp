//===- KilnGPUDialect.cpp - the CUDA target's weight layouts --------------===//

#include "Conversion/KilnToGPU/IR/KilnGPUDialect.h"

#include "Kiln/IR/WeightLayout.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::kiln;

#include "Conversion/KilnToGPU/IR/KilnGPUDialect.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "Conversion/KilnToGPU/IR/KilnGPUAttrs.cpp.inc"

void KilnGPUDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "Conversion/KilnToGPU/IR/KilnGPUAttrs.cpp.inc"
      >();
}

/// The split form of the ggml format whose numbers `scheme` has.
static const SplitFormat *splitFormOf(QuantSchemeAttr scheme) {
  if (scheme.getLayout() != QuantLayout::GGUF)
    return nullptr;
  const ::kiln::GGMLFormat *ggml = findGGMLBlockFormat(scheme);
  return ggml ? findSplitFormat(ggml->type) : nullptr;
}

const SplitFormat *mlir::kiln::findSplitFormat(WeightType type) {
  QuantSchemeAttr q = type.getQuant();
  if (!q || type.getSparsity())
    return nullptr;
  return splitFormOf(q);
}

bool mlir::kiln::isSplit(WeightType type) {
  QuantSchemeAttr q = type.getQuant();
  return q && q.getTargetLayout() && isa<SplitLayoutAttr>(q.getTargetLayout());
}

//===----------------------------------------------------------------------===//
// SplitLayoutAttr: WeightLayoutAttrInterface
//===----------------------------------------------------------------------===//

StringRef SplitLayoutAttr::getLayoutName() const { return "split"; }

LogicalResult
SplitLayoutAttr::verifyScheme(function_ref<InFlightDiagnostic()> emitError,
                              QuantSchemeAttr scheme) const {
  if (splitFormOf(scheme))
    return success();
  return emitError() << "target_layout = #kiln_gpu.split takes only the ggml "
                        "formats Q4_0, Q4_1 and Q8_0 in layout = gguf";
}

std::optional<uint64_t> SplitLayoutAttr::getStorageBytes(QuantSchemeAttr scheme,
                                                         uint64_t rows,
                                                         uint64_t k) const {
  const SplitFormat *format = splitFormOf(scheme);
  if (!format || k % 32 != 0)
    return std::nullopt;
  // The bytes of the GGUF blocks, rearranged.
  std::optional<uint64_t> blocks = ::kiln::checkedMul(rows, k / 32);
  if (!blocks)
    return std::nullopt;
  return ::kiln::checkedMul(*blocks,
                            uint64_t(format->codeBytes + format->headerBytes));
}

// Q4_0, Q4_1 and Q8_0 blocks have one scale per 32 values: the decode GEMV
// multiplies their codes with int8 activations (KilnToGPU/Linear.cpp).
bool SplitLayoutAttr::takesQuantizedActivations(QuantSchemeAttr) const {
  return true;
}
