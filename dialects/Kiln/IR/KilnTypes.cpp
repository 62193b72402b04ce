//===- KilnTypes.cpp - kiln types -----------------------------------------===//

#include "Kiln/IR/KilnDialect.h"
#include "Kiln/IR/WeightLayout.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::kiln;

#define GET_TYPEDEF_CLASSES
#include "Kiln/IR/KilnTypes.cpp.inc"

void KilnDialect::registerTypes() {
  addTypes<
#define GET_TYPEDEF_LIST
#include "Kiln/IR/KilnTypes.cpp.inc"
      >();
}

static bool isWeightFloatType(Type type) {
  return isa<Float32Type, Float16Type, BFloat16Type, Float8E4M3FNType,
             Float8E5M2Type>(type);
}

//===----------------------------------------------------------------------===//
// WeightType: !kiln.weight<NxKxf16>, !kiln.weight<NxKx#kiln.quant<...>>,
// either followed by `, sparsity = #kiln.sparsity<...>`.
//===----------------------------------------------------------------------===//

Type WeightType::parse(AsmParser &parser) {
  SmallVector<int64_t> shape;
  if (parser.parseLess() ||
      parser.parseDimensionList(shape, /*allowDynamic=*/false,
                                /*withTrailingX=*/true))
    return {};
  Type elementType;
  QuantSchemeAttr quant;
  Attribute attr;
  OptionalParseResult hasAttr = parser.parseOptionalAttribute(attr);
  if (hasAttr.has_value()) {
    if (failed(*hasAttr))
      return {};
    // A bare type parses as a TypeAttr: that is the dense element type.
    if (auto typeAttr = dyn_cast<TypeAttr>(attr))
      elementType = typeAttr.getValue();
    quant = dyn_cast<QuantSchemeAttr>(attr);
    if (!quant && !elementType) {
      parser.emitError(parser.getCurrentLocation(),
                       "expected a float element type or #kiln.quant");
      return {};
    }
  } else {
    parser.emitError(parser.getCurrentLocation(),
                     "expected a float element type or #kiln.quant");
    return {};
  }
  SparsityAttr sparsity;
  if (succeeded(parser.parseOptionalComma())) {
    if (parser.parseKeyword("sparsity") || parser.parseEqual() ||
        parser.parseAttribute(sparsity))
      return {};
  }
  if (parser.parseGreater())
    return {};
  return parser.getChecked<WeightType>(parser.getContext(), shape, elementType,
                                       quant, sparsity);
}

void WeightType::print(AsmPrinter &printer) const {
  printer << "<";
  printer.printDimensionList(getShape());
  printer << "x";
  if (getQuant())
    printer.printAttribute(getQuant());
  else
    printer.printType(getElementType());
  if (getSparsity()) {
    printer << ", sparsity = ";
    printer.printAttribute(getSparsity());
  }
  printer << ">";
}

int64_t WeightType::getNumRows() const {
  int64_t rows = 1;
  for (int64_t d : getShape().drop_back())
    rows *= d;
  return rows;
}

/// Bytes of one stored value of a dense or sparse float weight.
static unsigned valueBytes(WeightType type) {
  return getFloatStorageBytes(type.getElementType());
}

SparsityAttr WeightType::getCompressedSparsity() const {
  SparsityAttr sparsity = getSparsity();
  return sparsity && !sparsity.getDense() ? sparsity : SparsityAttr();
}

static ::kiln::QuantBlockShape blockShapeOf(QuantSchemeAttr quant) {
  ::kiln::QuantBlockShape shape;
  shape.bits = quant.getBits();
  shape.group = quant.getGroup();
  shape.superGroup = quant.getSuperGroup();
  shape.subScaleBits = quant.getSubScaleBits();
  shape.scaleBytes = getFloatStorageBytes(quant.getScaleType());
  shape.zeroBytes =
      quant.getZeroType() ? getFloatStorageBytes(quant.getZeroType()) : 0;
  if (const ::kiln::GGMLFormat *ggml = findGGMLBlockFormat(quant);
      ggml && !ggml->hasGeneralBlock())
    shape.fixedBlockBytes = ggml->blockBytes;
  return shape;
}

FailureOr<uint64_t> WeightType::getRowBytes() const {
  if (getCompressedSparsity())
    return failure();
  uint64_t k = getInnerDim();
  if (QuantSchemeAttr quant = getQuant()) {
    // A target layout may interleave rows (see getStorageBytes).
    if (quant.getTargetLayout())
      return failure();
    std::optional<uint64_t> bytes = blockShapeOf(quant).rowBytes(k);
    if (!bytes)
      return failure();
    return *bytes;
  }
  std::optional<uint64_t> bytes = ::kiln::checkedMul(k, valueBytes(*this));
  if (!bytes)
    return failure();
  return *bytes;
}

bool WeightType::takesQuantizedActivations() const {
  QuantSchemeAttr q = getQuant();
  if (!q || getInnerDim() % 32 != 0)
    return false;
  // n:m compressed blocks keep one scale per 32 values (the verifier).
  if (getCompressedSparsity())
    return true;
  if (WeightLayoutAttrInterface layout = q.getTargetLayout())
    return layout.takesQuantizedActivations(q);
  switch (q.getLayout()) {
  case QuantLayout::GGUF: {
    const ::kiln::GGMLFormat *ggml = findGGMLBlockFormat(q);
    return ggml && ggml->hasScalePer32();
  }
  case QuantLayout::Packed:
    return !q.isTwoLevel() && q.getGroup() % 32 == 0;
  }
  return false;
}

FailureOr<uint64_t> WeightType::getStorageBytes() const {
  std::optional<uint64_t> count = ::kiln::checkedElementCount(getShape());
  if (!count)
    return failure();
  uint64_t rows = *count / getInnerDim();
  uint64_t k = getInnerDim();
  SparsityAttr sparsity = getCompressedSparsity();
  QuantSchemeAttr quant = getQuant();
  if (quant && quant.getTargetLayout()) {
    std::optional<uint64_t> total =
        quant.getTargetLayout().getStorageBytes(quant, rows, k);
    if (!total)
      return failure();
    return *total;
  }
  if (QuantSchemeAttr quant = getQuant();
      quant && sparsity && sparsity.getKind() == SparsityKind::Bitmap) {
    // Quantized and bitmap compressed (WeightLayout.h, bitmapWeightBytes).
    std::optional<uint64_t> total = ::kiln::bitmapWeightBytes(
        blockShapeOf(quant), rows, k, sparsity.getNnz());
    if (!total)
      return failure();
    return *total;
  }
  if (QuantSchemeAttr quant = getQuant(); quant && sparsity) {
    // Quantized and compressed: n:m (the verifier checks it).
    std::optional<uint64_t> blockBytes = ::kiln::nmBlockBytes(
        blockShapeOf(quant), sparsity.getN(), sparsity.getM());
    std::optional<uint64_t> total =
        blockBytes ? ::kiln::checkedMul(*count / quant.getGroup(), *blockBytes)
                   : std::nullopt;
    if (!total)
      return failure();
    return *total;
  }
  if (!sparsity) {
    FailureOr<uint64_t> rowBytes = getRowBytes();
    if (failed(rowBytes))
      return failure();
    std::optional<uint64_t> total = ::kiln::checkedMul(rows, *rowBytes);
    if (!total)
      return failure();
    return *total;
  }
  uint64_t vb = valueBytes(*this);
  std::optional<uint64_t> total;
  switch (sparsity.getKind()) {
  case SparsityKind::NM: {
    // n kept values per run of m, each with a ceil(log2 m)-bit index.
    uint64_t runs = *count / sparsity.getM();
    unsigned indexBits = llvm::Log2_32_Ceil(sparsity.getM());
    auto kept = ::kiln::checkedMul(runs, sparsity.getN());
    if (!kept)
      return failure();
    auto values = ::kiln::checkedMul(*kept, vb);
    auto indexBitsTotal = ::kiln::checkedMul(*kept, indexBits);
    if (!values || !indexBitsTotal)
      return failure();
    total = ::kiln::checkedAdd(*values, (*indexBitsTotal + 7) / 8);
    break;
  }
  case SparsityKind::Bitmap: {
    auto bitmapBytes = ::kiln::checkedMul(rows, (k + 7) / 8);
    auto values = ::kiln::checkedMul(sparsity.getNnz(), vb);
    if (!bitmapBytes || !values)
      return failure();
    total = ::kiln::checkedAdd(*bitmapBytes, *values);
    break;
  }
  case SparsityKind::CSR: {
    // 32-bit row pointers (rows + 1) and column indices, then the values.
    auto rowPtrs = ::kiln::checkedMul(rows + 1, 4);
    auto cols = ::kiln::checkedMul(sparsity.getNnz(), 4);
    auto values = ::kiln::checkedMul(sparsity.getNnz(), vb);
    if (!rowPtrs || !cols || !values)
      return failure();
    auto sum = ::kiln::checkedAdd(*rowPtrs, *cols);
    total = sum ? ::kiln::checkedAdd(*sum, *values) : std::nullopt;
    break;
  }
  case SparsityKind::Block: {
    uint64_t blocks = (rows / sparsity.getBlockRows()) *
                      (k / sparsity.getBlockCols());
    auto blockValues = ::kiln::checkedMul(
        uint64_t(sparsity.getBlockRows()) * sparsity.getBlockCols(), vb);
    if (!blockValues)
      return failure();
    auto values = ::kiln::checkedMul(sparsity.getNnz(), *blockValues);
    if (!values)
      return failure();
    total = ::kiln::checkedAdd((blocks + 7) / 8, *values);
    break;
  }
  }
  if (!total)
    return failure();
  return *total;
}

LogicalResult WeightType::verify(function_ref<InFlightDiagnostic()> emitError,
                                 ArrayRef<int64_t> shape, Type elementType,
                                 QuantSchemeAttr quant, SparsityAttr sparsity) {
  if (shape.empty())
    return emitError() << "weight must have at least one dimension";
  for (int64_t d : shape)
    if (d <= 0)
      return emitError() << "weight dimension " << d << " must be positive";
  if (!!elementType == !!quant)
    return emitError() << "weight needs exactly one of a float element type "
                          "or a #kiln.quant scheme";
  if (elementType && !isWeightFloatType(elementType))
    return emitError() << "weight element type " << elementType
                       << " must be f32, f16, bf16, f8E4M3FN or f8E5M2";
  int64_t k = shape.back();
  if (quant && k % quant.getBlockSize() != 0) {
    if (quant.isTwoLevel())
      return emitError() << "weight super-group size " << quant.getSuperGroup()
                         << " does not divide K = " << k;
    return emitError() << "weight group size " << quant.getGroup()
                       << " does not divide K = " << k;
  }
  std::optional<uint64_t> count = ::kiln::checkedElementCount(shape);
  if (!count)
    return emitError() << "weight element count overflows 64 bits";
  if (sparsity) {
    if (quant && !sparsity.getDense()) {
      // Compressed quantized weights keep their codes and dense scales per
      // block and drop the pruned codes (WeightLayout.h, nmBlockBytes and
      // bitmapWeightBytes).
      if (sparsity.getKind() == SparsityKind::Bitmap) {
        if (!::kiln::bitmapWeightBytes(blockShapeOf(quant), *count / k, k,
                                       sparsity.getNnz()) ||
            quant.getTargetLayout() || !quant.isSymmetric())
          return emitError()
                 << "a bitmap compressed weight needs 4- or 8-bit symmetric "
                    "groups of 32 with an f16 scale, rows a multiple of 16 "
                    "and whole bytes of kept codes, got "
                 << quant << " with " << *count / k << " rows and nnz "
                 << sparsity.getNnz();
      } else if (sparsity.getKind() != SparsityKind::NM) {
        return emitError() << "a quantized weight can be stored compressed "
                              "only with n_m or bitmap sparsity";
      }
      if (sparsity.getKind() == SparsityKind::NM &&
          (quant.isTwoLevel() || !quant.isSymmetric() ||
           quant.getTargetLayout()))
        return emitError() << "a compressed n:m weight needs a symmetric "
                              "one-level quantization in layout gguf or "
                              "packed";
      if (sparsity.getKind() == SparsityKind::NM && *count / k % 16 != 0)
        return emitError() << "a compressed n:m weight interleaves rows by "
                              "16, got "
                           << *count / k << " rows";
      if (sparsity.getKind() == SparsityKind::NM &&
          !::kiln::nmBlockBytes(blockShapeOf(quant), sparsity.getN(),
                                sparsity.getM()))
        return emitError() << sparsity.getN() << ":" << sparsity.getM()
                           << " compression of " << quant.getBits()
                           << "-bit groups of " << quant.getGroup()
                           << " does not fill whole bytes";
    }
    uint64_t rows = *count / k;
    switch (sparsity.getKind()) {
    case SparsityKind::NM:
      if (k % sparsity.getM() != 0)
        return emitError() << sparsity.getN() << ":" << sparsity.getM()
                           << " sparsity needs K = " << k
                           << " to be a multiple of " << sparsity.getM();
      break;
    case SparsityKind::Block:
      if (rows % sparsity.getBlockRows() != 0 ||
          k % sparsity.getBlockCols() != 0)
        return emitError() << "block " << sparsity.getBlockRows() << "x"
                           << sparsity.getBlockCols()
                           << " does not tile a weight of " << rows << "x"
                           << k;
      if (sparsity.getNnz() > (rows / sparsity.getBlockRows()) *
                                  (k / sparsity.getBlockCols()))
        return emitError() << "nnz " << sparsity.getNnz()
                           << " exceeds the number of blocks";
      break;
    case SparsityKind::Bitmap:
    case SparsityKind::CSR:
      if (sparsity.getNnz() > *count)
        return emitError() << "nnz " << sparsity.getNnz()
                           << " exceeds the " << *count << " weight values";
      break;
    }
  }
  // get() does not verify, so this does not recurse.
  WeightType type = WeightType::get(
      elementType ? elementType.getContext() : quant.getContext(), shape,
      elementType, quant, sparsity);
  if (failed(type.getStorageBytes()))
    return emitError() << "weight storage size overflows 64 bits";
  return success();
}

//===----------------------------------------------------------------------===//
// KVCacheType: !kiln.kv_cache<layers x context x kv_heads x head_dim x T>
//===----------------------------------------------------------------------===//

Type KVCacheType::parse(AsmParser &parser) {
  SmallVector<int64_t> dims;
  Type elementType;
  llvm::SMLoc loc = parser.getCurrentLocation();
  if (parser.parseLess() ||
      parser.parseDimensionList(dims, /*allowDynamic=*/false,
                                /*withTrailingX=*/true) ||
      parser.parseType(elementType) || parser.parseGreater())
    return {};
  if (dims.size() != 4) {
    parser.emitError(loc, "expected layers x context x kv_heads x head_dim, "
                          "got ")
        << dims.size() << " dimensions";
    return {};
  }
  return parser.getChecked<KVCacheType>(parser.getContext(), dims[0], dims[1],
                                        dims[2], dims[3], elementType);
}

void KVCacheType::print(AsmPrinter &printer) const {
  printer << "<" << getLayers() << "x" << getContextLength() << "x" << getKvHeads()
          << "x" << getHeadDim() << "x" << getElementType() << ">";
}

LogicalResult KVCacheType::verify(function_ref<InFlightDiagnostic()> emitError,
                                  int64_t layers, int64_t contextLength,
                                  int64_t kvHeads, int64_t headDim,
                                  Type elementType) {
  if (layers <= 0 || contextLength <= 0 || kvHeads <= 0 || headDim <= 0)
    return emitError() << "kv cache dimensions must be positive";
  if (!isa<Float32Type, Float16Type, BFloat16Type>(elementType))
    return emitError() << "kv cache element type " << elementType
                       << " must be f32, f16 or bf16";
  int64_t dims[] = {2, layers, contextLength, kvHeads, headDim,
                    (elementType.getIntOrFloatBitWidth() + 7) / 8};
  if (!::kiln::checkedElementCount(dims))
    return emitError() << "kv cache size overflows 64 bits";
  return success();
}

FailureOr<uint64_t> KVCacheType::getStorageBytes() const {
  int64_t dims[] = {2, getLayers(), getContextLength(), getKvHeads(), getHeadDim(),
                    (getElementType().getIntOrFloatBitWidth() + 7) / 8};
  std::optional<uint64_t> bytes = ::kiln::checkedElementCount(dims);
  if (!bytes)
    return failure();
  return *bytes;
}
