//===- KilnOps.cpp - kiln operations --------------------------------------===//

#include "Kiln/IR/KilnDialect.h"
#include "Kiln/IR/WeightLayout.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/OpImplementation.h"

#include <cmath>

using namespace mlir;
using namespace mlir::kiln;

#define GET_OP_CLASSES
#include "Kiln/IR/KilnOps.cpp.inc"

/// Two dimensions agree when either is dynamic or they are equal.
static bool dimsAgree(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

/// A dimension as IR text writes it: `?` when dynamic.
static std::string formatDim(int64_t d) {
  return ShapedType::isDynamic(d) ? std::string("?") : std::to_string(d);
}

/// Checks that a tensor operand has at least one dimension: the ops below
/// work along the last one.
static LogicalResult verifyHasLastDim(Operation *op, RankedTensorType type,
                                      StringRef what) {
  if (type.getRank() < 1)
    return op->emitOpError() << what << " must have rank >= 1, got " << type;
  return success();
}

/// Checks that `result` has the leading dims of `input` and a last dim `last`.
static LogicalResult verifyRowwiseResult(Operation *op, RankedTensorType input,
                                         RankedTensorType result,
                                         int64_t last) {
  if (input.getRank() != result.getRank())
    return op->emitOpError("result rank ")
           << result.getRank() << " does not match input rank "
           << input.getRank();
  for (int64_t i = 0, e = input.getRank() - 1; i < e; ++i)
    if (!dimsAgree(input.getDimSize(i), result.getDimSize(i)))
      return op->emitOpError("result dimension ")
             << i << " is " << result.getDimSize(i) << ", expected "
             << input.getDimSize(i);
  if (!dimsAgree(result.getShape().back(), last))
    return op->emitOpError("result last dimension is ")
           << result.getShape().back() << ", expected " << last;
  return success();
}

/// Checks that a 1-D weight (norm scale, bias) has `n` dense float values.
static LogicalResult verifyVectorWeight(Operation *op, WeightType weight,
                                        int64_t n, StringRef what) {
  if (weight.getRank() != 1 || weight.getShape()[0] != n)
    return op->emitOpError() << what << " must be a 1-D weight of " << n
                             << " values, got " << weight;
  if (!weight.getElementType() || weight.getSparsity())
    return op->emitOpError() << what
                             << " must be a dense float weight (not quantized "
                                "or sparse), got "
                             << weight;
  return success();
}

//===----------------------------------------------------------------------===//
// WeightOp
//===----------------------------------------------------------------------===//

FailureOr<uint64_t> WeightOp::getSourceBytes() {
  Attribute source = getSource();
  if (auto ext = dyn_cast<ExternalDataAttr>(source))
    return ext.getSize();
  if (auto res = dyn_cast<DenseResourceElementsAttr>(source)) {
    AsmResourceBlob *blob = res.getRawHandle().getBlob();
    if (!blob)
      return failure();
    return blob->getData().size();
  }
  if (auto dense = dyn_cast<DenseElementsAttr>(source)) {
    Type elt = dense.getElementType();
    if (!elt.isIntOrFloat())
      return failure();
    return uint64_t(dense.getNumElements()) *
           ((elt.getIntOrFloatBitWidth() + 7) / 8);
  }
  return failure();
}

/// Checks the element type of an inline or dense_resource source: i8 bytes
/// of the storage encoding, or values of a dense weight's own float type.
static LogicalResult verifySourceElementType(Operation *op, WeightType type,
                                             ShapedType source,
                                             StringRef what) {
  Type elt = source.getElementType();
  if (elt.isInteger(8))
    return success();
  if (type.getElementType() && !type.getCompressedSparsity()) {
    if (elt == type.getElementType())
      return success();
    return op->emitOpError()
           << what << " must be i8 bytes or " << type.getElementType()
           << " values, got " << elt;
  }
  return op->emitOpError() << what << " of a "
                           << (type.getQuant() ? "quantized" : "sparse")
                           << " weight must be i8 bytes, got " << elt;
}

LogicalResult WeightOp::verify() {
  Attribute source = getSource();
  WeightType type = getType();
  // The type's verifier rejects weights whose size overflows; a type built
  // with get() in C++ skips it, so say so rather than compare garbage.
  FailureOr<uint64_t> storage = type.getStorageBytes();
  if (failed(storage))
    return emitOpError("weight storage size of ")
           << type << " overflows 64 bits";
  if (!isa<ExternalDataAttr, DenseResourceElementsAttr, DenseElementsAttr>(
          source))
    return emitOpError("source must be #kiln.external, dense_resource or "
                       "dense elements, got ")
           << source;
  if (auto ext = dyn_cast<ExternalDataAttr>(source)) {
    if (ext.getPath().getValue().empty())
      return emitOpError("external source has an empty path");
    uint64_t end;
    if (__builtin_add_overflow(ext.getOffset(), ext.getSize(), &end))
      return emitOpError("external range offset ")
             << ext.getOffset() << " + size " << ext.getSize()
             << " overflows 64 bits";
  }
  // Inline floats of the weight's own element type are the storage itself.
  if (auto dense = dyn_cast<DenseElementsAttr>(source))
    if (failed(verifySourceElementType(*this, type, dense.getType(),
                                       "inline source")))
      return failure();
  if (auto res = dyn_cast<DenseResourceElementsAttr>(source)) {
    ShapedType resType = res.getType();
    if (failed(verifySourceElementType(*this, type, resType,
                                       "dense_resource source")))
      return failure();
    // The declared type fixes the size even when the blob is elided.
    std::optional<uint64_t> declared = ::kiln::checkedMul(
        resType.getNumElements(),
        (resType.getElementType().getIntOrFloatBitWidth() + 7) / 8);
    if (!declared || *declared != *storage)
      return emitOpError("dense_resource source type ")
             << resType << " holds "
             << (declared ? std::to_string(*declared) : std::string("too many"))
             << " bytes but " << type << " needs " << *storage;
  }
  FailureOr<uint64_t> bytes = getSourceBytes();
  // A dense_resource whose blob is elided has no known size: nothing to check.
  if (succeeded(bytes) && *bytes != *storage)
    return emitOpError("source holds ")
           << *bytes << " bytes but " << type << " needs " << *storage;
  return success();
}

//===----------------------------------------------------------------------===//
// LinearOp
//===----------------------------------------------------------------------===//

ParseResult LinearOp::parse(OpAsmParser &parser, OperationState &result) {
  OpAsmParser::UnresolvedOperand input, weight, bias, residual, position;
  bool hasBias = false, hasResidual = false, hasRope = false;
  Type inputType, weightType, biasType, resultType;
  if (parser.parseOperand(input) || parser.parseComma() ||
      parser.parseOperand(weight))
    return failure();
  if (succeeded(parser.parseOptionalComma())) {
    if (parser.parseKeyword("bias") || parser.parseOperand(bias))
      return failure();
    hasBias = true;
  }
  if (succeeded(parser.parseOptionalKeyword("residual"))) {
    if (parser.parseOperand(residual))
      return failure();
    hasResidual = true;
  }
  if (succeeded(parser.parseOptionalKeyword("rope"))) {
    RopeAttr rope;
    // In parentheses: a dialect attribute would take the `:` after it as
    // the start of its own type.
    if (parser.parseLParen() || parser.parseOperand(position) ||
        parser.parseComma() || parser.parseAttribute(rope) ||
        parser.parseRParen())
      return failure();
    result.getOrAddProperties<Properties>().rope = rope;
    hasRope = true;
  }
  if (parser.parseOptionalAttrDict(result.attributes) ||
      parser.parseColonType(inputType) || parser.parseComma() ||
      parser.parseType(weightType))
    return failure();
  if (hasBias && (parser.parseComma() || parser.parseType(biasType)))
    return failure();
  if (parser.parseArrow() || parser.parseType(resultType))
    return failure();
  if (parser.resolveOperand(input, inputType, result.operands) ||
      parser.resolveOperand(weight, weightType, result.operands) ||
      (hasBias && parser.resolveOperand(bias, biasType, result.operands)) ||
      (hasResidual &&
       parser.resolveOperand(residual, resultType, result.operands)) ||
      (hasRope && parser.resolveOperand(position,
                                        parser.getBuilder().getIndexType(),
                                        result.operands)))
    return failure();
  result.getOrAddProperties<Properties>().operandSegmentSizes = {
      1, 1, hasBias, hasResidual, hasRope};
  result.addTypes(resultType);
  return success();
}

void LinearOp::print(OpAsmPrinter &p) {
  p << ' ' << getInput() << ", " << getWeight();
  if (getBias())
    p << ", bias " << getBias();
  if (getResidual())
    p << " residual " << getResidual();
  if (getRope())
    p << " rope(" << getRopePosition() << ", " << getRopeAttr() << ')';
  p.printOptionalAttrDict((*this)->getAttrs(),
                          {"operandSegmentSizes", getRopeAttrName()});
  p << " : " << getInput().getType() << ", " << getWeight().getType();
  if (getBias())
    p << ", " << getBias().getType();
  p << " -> " << getResult().getType();
}

LogicalResult LinearOp::verify() {
  RankedTensorType input = getInput().getType();
  RankedTensorType result = getResult().getType();
  WeightType weight = getWeight().getType();
  if (failed(verifyHasLastDim(*this, input, "input")))
    return failure();
  if (weight.getRank() != 2)
    return emitOpError("weight must be 2-D [N, K], got ") << weight;
  int64_t n = weight.getShape()[0], k = weight.getShape()[1];
  // The weight type's verifier already checked that K is a whole number of
  // quantization blocks.
  if (!dimsAgree(input.getShape().back(), k))
    return emitOpError("input last dimension ")
           << input.getShape().back() << " does not match weight K = " << k;
  if (Value bias = getBias())
    if (failed(verifyVectorWeight(*this, cast<WeightType>(bias.getType()), n,
                                  "bias")))
      return failure();
  if (input.getElementType() != result.getElementType())
    return emitOpError("result element type ")
           << result.getElementType() << " differs from input element type "
           << input.getElementType();
  if (Value residual = getResidual(); residual && residual.getType() != result)
    return emitOpError("residual type ")
           << residual.getType() << " differs from result type " << result;
  if (bool(getRope()) != bool(getRopePosition()))
    return emitOpError("needs both a rope position and a #kiln.rope, or "
                       "neither");
  if (RopeAttr rope = getRopeAttr()) {
    if (getResidual())
      return emitOpError("cannot have both a residual and a rope (their "
                         "order would be ambiguous)");
    if (result.getRank() != 2 || !dimsAgree(result.getDimSize(1),
                                            rope.getWidth()))
      return emitOpError("result must be [tokens, num_heads * head_dim = ")
             << rope.getWidth() << "] for its rope, got " << result;
  }
  if (getActivationBits() && !weight.takesQuantizedActivations())
    return emitOpError("activation_bits needs a weight with one scale per 32 "
                       "values along K (Q4_0..Q8_0, packed groups of a "
                       "multiple of 32, rows16), got ")
           << weight;
  return verifyRowwiseResult(*this, input, result, n);
}

//===----------------------------------------------------------------------===//
// EmbeddingOp
//===----------------------------------------------------------------------===//

LogicalResult EmbeddingOp::verify() {
  WeightType table = getTable().getType();
  RankedTensorType ids = getIds().getType();
  RankedTensorType result = getResult().getType();
  if (table.getRank() != 2)
    return emitOpError("table must be 2-D [vocab, dim], got ") << table;
  if (table.getSparsity())
    return emitOpError("table must not be sparse");
  if (ids.getRank() != 1)
    return emitOpError("ids must be 1-D, got ") << ids;
  if (!std::isfinite(getScale().convertToFloat()))
    return emitOpError("scale must be finite, got ") << getScaleAttr();
  if (result.getRank() != 2 || !dimsAgree(result.getDimSize(0), ids.getDimSize(0)) ||
      !dimsAgree(result.getDimSize(1), table.getShape()[1]))
    return emitOpError("result must be [")
           << formatDim(ids.getDimSize(0)) << ", " << table.getShape()[1]
           << "], got " << result;
  return success();
}

LogicalResult PositionEmbeddingOp::verify() {
  WeightType table = getTable().getType();
  RankedTensorType input = getInput().getType();
  if (input != getResult().getType())
    return emitOpError("result type ")
           << getResult().getType() << " differs from input type " << input;
  if (table.getRank() != 2)
    return emitOpError("table must be 2-D [positions, dim], got ") << table;
  if (table.getSparsity())
    return emitOpError("table must not be sparse");
  if (input.getRank() != 2 || !dimsAgree(input.getDimSize(1), table.getShape()[1]))
    return emitOpError("input must be [tokens, ")
           << table.getShape()[1] << "] like the table's rows, got " << input;
  if (getStep() != 0 && getStep() != 1)
    return emitOpError("step must be 0 (one row for every token) or 1 (a "
                       "row per position), got ")
           << getStep();
  return success();
}

LogicalResult MeanPoolOp::verify() {
  RankedTensorType input = getInput().getType();
  RankedTensorType result = getResult().getType();
  if (input.getRank() != 2 || ShapedType::isDynamic(input.getDimSize(1)))
    return emitOpError("input must be 2-D [tokens, dim] with a static dim, got ")
           << input;
  if (result.getRank() != 2 || !dimsAgree(result.getDimSize(0), 1) ||
      result.getDimSize(1) != input.getDimSize(1) ||
      result.getElementType() != input.getElementType())
    return emitOpError("result must be [1, ")
           << input.getDimSize(1) << "] of " << input.getElementType()
           << ", got " << result;
  return success();
}

//===----------------------------------------------------------------------===//
// Norms
//===----------------------------------------------------------------------===//

static LogicalResult verifyNorm(Operation *op, RankedTensorType input,
                                RankedTensorType result, WeightType weight,
                                Value bias, float epsilon) {
  if (input != result)
    return op->emitOpError("result type ")
           << result << " differs from input type " << input;
  if (failed(verifyHasLastDim(op, input, "input")))
    return failure();
  int64_t d = input.getShape().back();
  if (ShapedType::isDynamic(d))
    return op->emitOpError("normalized (last) dimension must be static");
  if (!(epsilon > 0.0f))
    return op->emitOpError("epsilon must be positive, got ") << epsilon;
  if (failed(verifyVectorWeight(op, weight, d, "weight")))
    return failure();
  if (bias && failed(verifyVectorWeight(op, cast<WeightType>(bias.getType()),
                                        d, "bias")))
    return failure();
  return success();
}

LogicalResult RMSNormOp::verify() {
  return verifyNorm(*this, getInput().getType(), getResult().getType(),
                    getWeight().getType(), Value(),
                    getEpsilon().convertToFloat());
}

LogicalResult LayerNormOp::verify() {
  return verifyNorm(*this, getInput().getType(), getResult().getType(),
                    getWeight().getType(), getBias(),
                    getEpsilon().convertToFloat());
}

//===----------------------------------------------------------------------===//
// RopeOp
//===----------------------------------------------------------------------===//

RopeAttr RopeOp::getParameters() {
  return RopeAttr::get(getContext(), getNumHeads(), getHeadDim(),
                       getRotaryDim(), getStyle(), getFreqBase(),
                       getFreqScale(), getFreqFactorsAttr(), getMagnitude());
}

LogicalResult RopeOp::verify() {
  RankedTensorType input = getInput().getType();
  if (input != getResult().getType())
    return emitOpError("result type ")
           << getResult().getType() << " must equal input type " << input;
  if (input.getRank() != 2)
    return emitOpError("input must be 2-D [tokens, heads * head_dim], got ")
           << input;
  auto emitError = [&] { return emitOpError(); };
  if (failed(RopeAttr::verify(
          emitError, getNumHeads(), getHeadDim(), getRotaryDim(), getStyle(),
          getFreqBase(), getFreqScale(), getFreqFactorsAttr(), getMagnitude())))
    return failure();
  int64_t width = getNumHeads() * getHeadDim();
  if (!dimsAgree(input.getDimSize(1), width))
    return emitOpError("last dimension ")
           << input.getDimSize(1) << " is not num_heads * head_dim = "
           << width;
  if (getPosition() && getPositions())
    return emitOpError("takes a first position or one position per token, "
                       "not both");
  if (!getPosition() && !getPositions())
    return emitOpError("needs a first position or one position per token");
  if (getPositions() &&
      !dimsAgree(getPositions().getType().getDimSize(0), input.getDimSize(0)))
    return emitOpError("has ")
           << formatDim(getPositions().getType().getDimSize(0))
           << " positions for " << formatDim(input.getDimSize(0)) << " tokens";
  return success();
}

//===----------------------------------------------------------------------===//
// AttentionOp
//===----------------------------------------------------------------------===//

void AttentionOp::getEffects(
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
        &effects) {
  effects.emplace_back(MemoryEffects::Read::get(), &getCacheMutable());
  effects.emplace_back(MemoryEffects::Write::get(), &getCacheMutable());
}

LogicalResult AttentionOp::verify() {
  KVCacheType cache = getCache().getType();
  RankedTensorType q = getQuery().getType(), k = getKey().getType(),
                   v = getValue().getType(), out = getResult().getType();
  int64_t heads = getNumHeads(), kvHeads = cache.getKvHeads(),
          headDim = cache.getHeadDim();
  if (q.getRank() != 2 || k.getRank() != 2 || v.getRank() != 2)
    return emitOpError("query, key and value must be 2-D [tokens, heads * "
                       "head_dim], got ")
           << q << ", " << k << " and " << v;
  if (q.getElementType() != k.getElementType() ||
      q.getElementType() != v.getElementType())
    return emitOpError("query, key and value must have one element type, got ")
           << q.getElementType() << ", " << k.getElementType() << " and "
           << v.getElementType();
  if (heads <= 0 || heads % kvHeads != 0)
    return emitOpError("num_heads ")
           << heads << " is not a positive multiple of the cache's kv_heads "
           << kvHeads;
  // kv_heads * head_dim fits: the cache type's verifier bounds its size.
  int64_t qWidth;
  if (__builtin_mul_overflow(heads, headDim, &qWidth))
    return emitOpError("num_heads * head_dim = ")
           << heads << " * " << headDim << " overflows 64 bits";
  if (!dimsAgree(q.getDimSize(1), qWidth))
    return emitOpError("query last dimension ")
           << q.getDimSize(1) << " is not num_heads * head_dim = " << qWidth;
  if (!dimsAgree(k.getDimSize(1), kvHeads * headDim) ||
      !dimsAgree(v.getDimSize(1), kvHeads * headDim))
    return emitOpError("key and value last dimension must be kv_heads * "
                       "head_dim = ")
           << kvHeads * headDim << ", got "
           << formatDim(k.getDimSize(1)) << " and "
           << formatDim(v.getDimSize(1));
  if (!dimsAgree(q.getDimSize(0), k.getDimSize(0)) ||
      !dimsAgree(q.getDimSize(0), v.getDimSize(0)))
    return emitOpError("query, key and value must have the same tokens");
  if (out != q)
    return emitOpError("result type ") << out << " must equal query type " << q;
  if (bool(getSlots()) != bool(getPositions()))
    return emitOpError("takes slots and positions together");
  if (getPosition() && getPositions())
    return emitOpError("takes a first position or each token's slot and "
                       "position, not both");
  if (!getPosition() && !getPositions())
    return emitOpError("needs a first position or each token's slot and "
                       "position");
  if (getPositions()) {
    if (!getCausal())
      return emitOpError("over several sequences must be causal");
    for (Value perToken : {getSlots(), getPositions()}) {
      int64_t n = cast<RankedTensorType>(perToken.getType()).getDimSize(0);
      if (!dimsAgree(n, q.getDimSize(0)))
        return emitOpError("has ")
               << formatDim(n) << " slots or positions for "
               << formatDim(q.getDimSize(0)) << " tokens";
    }
  }
  // I64Attr getters return uint64_t: read them back as the signed values
  // the IR wrote.
  int64_t layer = getLayer(), window = getSlidingWindow();
  if (layer < 0 || layer >= cache.getLayers())
    return emitOpError("layer ")
           << layer << " is outside the cache's " << cache.getLayers()
           << " layers";
  if (window < 0)
    return emitOpError("sliding_window must be >= 0, got ") << window;
  if (!(getSoftcap().convertToFloat() >= 0.0f))
    return emitOpError("softcap must be >= 0, got ")
           << getSoftcap().convertToFloat();
  if (!(getScale().convertToFloat() > 0.0f))
    return emitOpError("scale must be positive, got ")
           << getScale().convertToFloat();
  return success();
}

//===----------------------------------------------------------------------===//
// Quantize / Dequantize
//===----------------------------------------------------------------------===//

static LogicalResult verifyActivationQuant(Operation *op,
                                           RankedTensorType values,
                                           RankedTensorType codes,
                                           RankedTensorType scales,
                                           int64_t bits, int64_t group,
                                           bool symmetric) {
  if (bits < 2 || bits > 8)
    return op->emitOpError("bit width ") << bits << " is out of range [2, 8]";
  if (group <= 0)
    return op->emitOpError("group size must be positive, got ") << group;
  if (failed(verifyHasLastDim(op, values, "float operand")))
    return failure();
  if (values.getShape() != codes.getShape())
    return op->emitOpError("codes shape must equal the float shape, got ")
           << codes << " and " << values;
  int64_t k = values.getShape().back();
  if (ShapedType::isDynamic(k))
    return op->emitOpError("last (grouped) dimension must be static, got ")
           << values;
  if (k % group != 0)
    return op->emitOpError("group size ")
           << group << " does not divide the last dimension " << k;
  SmallVector<int64_t> expected(values.getShape().drop_back());
  expected.push_back(k / group);
  if (!symmetric)
    expected.push_back(2);
  if (scales.getRank() != int64_t(expected.size()))
    return op->emitOpError("scales must have rank ")
           << expected.size() << " ("
           << (symmetric ? "[..., K / group]" : "[..., K / group, 2]")
           << "), got " << scales;
  for (auto [i, dims] : llvm::enumerate(llvm::zip(scales.getShape(), expected)))
    if (!dimsAgree(std::get<0>(dims), std::get<1>(dims)))
      return op->emitOpError("scales dimension ")
             << i << " is " << std::get<0>(dims) << ", expected "
             << formatDim(std::get<1>(dims));
  return success();
}

LogicalResult QuantizeOp::verify() {
  return verifyActivationQuant(*this, getInput().getType(),
                               getCodes().getType(), getScales().getType(),
                               getBits(), getGroup(), getSymmetric());
}

LogicalResult DequantizeOp::verify() {
  return verifyActivationQuant(*this, getResult().getType(),
                               getCodes().getType(), getScales().getType(),
                               getBits(), getGroup(), getSymmetric());
}

//===----------------------------------------------------------------------===//
// Communication between ranks
//===----------------------------------------------------------------------===//

LogicalResult SendOp::verify() {
  if (getPeerAttr().getInt() < 0)
    return emitOpError("peer must be a rank >= 0, got ")
           << getPeerAttr().getInt();
  return success();
}

LogicalResult RecvOp::verify() {
  if (getPeerAttr().getInt() < 0)
    return emitOpError("peer must be a rank >= 0, got ")
           << getPeerAttr().getInt();
  RankedTensorType rows = getRows().getType(), result = getResult().getType();
  if (rows.getRank() < 1 || result.getRank() < 1)
    return emitOpError("rows and result must have a leading (token) "
                       "dimension, got ")
           << rows << " and " << result;
  if (!dimsAgree(rows.getDimSize(0), result.getDimSize(0)))
    return emitOpError("result has ")
           << formatDim(result.getDimSize(0)) << " rows but rows has "
           << formatDim(rows.getDimSize(0));
  if (llvm::any_of(result.getShape().drop_front(), ShapedType::isDynamic))
    return emitOpError("result dimensions after the first must be static, "
                       "got ")
           << result;
  return success();
}
