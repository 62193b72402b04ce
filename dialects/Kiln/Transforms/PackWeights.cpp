//===- PackWeights.cpp - weights into a target's kernel layout ------------===//
//
// Two repackings, each done once per weight: into the layout the target's
// packer chooses (the CPU's rows16), and Q4_0/Q8_0 weights pruned 2:4 or
// unstructured (kiln-prune's `dense = true`) into the compressed n:m or
// bitmap blocks the sparse kernels read (WeightLayout.h, nmBlockBytes and
// bitmapWeightBytes; SparseLinear.cpp of the CPU lowering). An unstructured
// weight is compressed only where the bitmap kernel measured faster than
// the dense one (bitmapBeatsDense).
//
//===----------------------------------------------------------------------===//

#include "Kiln/IR/WeightStore.h"
#include "Kiln/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/bit.h"

#include <cstring>
#include <optional>

namespace mlir::kiln {
#define GEN_PASS_DEF_KILNPACKWEIGHTS
#include "Kiln/Transforms/Passes.h.inc"
} // namespace mlir::kiln

using namespace mlir;
using namespace mlir::kiln;

namespace {

/// A weight to pack and the layout it goes into.
struct Packable {
  WeightOp source;
  WeightLayoutAttrInterface layout;
};

/// The kiln.weight `linear` multiplies by, with the layout `packer` wants it
/// in, when it is quantized, in no target layout yet and the target wants
/// one.
std::optional<Packable> packableWeight(LinearOp linear,
                                       const WeightPacker &packer) {
  auto source = linear.getWeight().getDefiningOp<WeightOp>();
  WeightType type = linear.getWeight().getType();
  QuantSchemeAttr q = type.getQuant();
  if (!source || !q || q.getTargetLayout())
    return std::nullopt;
  WeightLayoutAttrInterface layout = packer.chooseLayout(type);
  if (!layout)
    return std::nullopt;
  return Packable{source, layout};
}

/// Packed sources by (source, packed type): kiln.weight ops naming the same
/// bytes share one blob.
using PackedSources = llvm::DenseMap<std::pair<Attribute, Type>, Attribute>;

/// The ggml format's bits (4: Q4_0, 8: Q8_0) when a sparse kernel reads
/// its codes compressed, else 0.
unsigned sparseCodeBits(WeightType type) {
  QuantSchemeAttr q = type.getQuant();
  if (!q || q.getLayout() != QuantLayout::GGUF || type.getRank() != 2 ||
      type.getNumRows() % 16 != 0 || type.getInnerDim() % 32 != 0)
    return 0;
  const ::kiln::GGMLFormat *ggml = findGGMLBlockFormat(q);
  if (ggml && ggml->type == ::kiln::GGMLType::Q4_0)
    return 4;
  if (ggml && ggml->type == ::kiln::GGMLType::Q8_0)
    return 8;
  return 0;
}

/// A format (code bits) and the kept share at or below which the bitmap
/// kernel measured faster than the dense rows16 one.
struct BitmapWin {
  unsigned bits;
  double maxKept;
};

/// Where bench/sparse-gemv measured the bitmap kernel (SparseLinear.cpp)
/// faster than the dense one, one thread, 4096x4096 and 14336x4096
/// (bench/results/sparse-gemv-unstructured-20261205.md): nowhere yet. On
/// x86-64-v3 (AMD EPYC, AVX2) it took 1.3-3.4x the dense kernel's time at
/// 50%, 75% and 90% zeros: expanding a 64-byte plane costs ~75 instructions
/// on AVX2 against ~15 for the dense Q4_0 kernel's whole plane, and Q8_0 is
/// bound by the byte product there, not by bytes. The AVX-512 variant could
/// not run there (and has no VBMI2 vpexpandb). A measured win goes here.
constexpr llvm::ArrayRef<BitmapWin> kBitmapWins = {};

bool bitmapBeatsDense(unsigned bits, double kept) {
  return llvm::any_of(kBitmapWins, [&](const BitmapWin &win) {
    return win.bits == bits && kept <= win.maxKept;
  });
}

/// Whether kiln-pack-weights stores `type`, pruned unstructured (kiln-prune's
/// bitmap with `dense = true`), bitmap compressed: the bitmap kernel reads its
/// format and `storage` asks for it, or (Auto) it beats the dense one at the
/// weight's rate. Otherwise it stays dense: the dense fallback.
bool choosesBitmap(WeightType type, UnstructuredStorage storage) {
  SparsityAttr sparsity = type.getSparsity();
  if (!sparsity || !sparsity.getDense() ||
      sparsity.getKind() != SparsityKind::Bitmap ||
      storage == UnstructuredStorage::Dense)
    return false;
  unsigned bits = sparseCodeBits(type);
  double values = double(type.getNumRows()) * double(type.getInnerDim());
  return bits && (storage == UnstructuredStorage::Bitmap ||
                  bitmapBeatsDense(bits, double(sparsity.getNnz()) / values));
}

/// The n:m patterns and ggml formats the sparse kernels read compressed
/// (bitmap ones as `storage` chooses). Any other pruned weight stays dense:
/// that is the dense fallback.
bool hasSparseKernel(WeightType type, UnstructuredStorage storage) {
  if (choosesBitmap(type, storage))
    return true;
  SparsityAttr sparsity = type.getSparsity();
  return sparsity && sparsity.getDense() &&
         sparsity.getKind() == SparsityKind::NM && sparsity.getN() == 2 &&
         sparsity.getM() == 4 && type.getInnerDim() % 64 == 0 &&
         sparseCodeBits(type);
}

/// The kiln.weight `linear` multiplies by, when it is pruned, still stored
/// dense and has a sparse kernel that reads it compressed.
WeightOp compressibleWeight(LinearOp linear, UnstructuredStorage storage) {
  auto source = linear.getWeight().getDefiningOp<WeightOp>();
  return source && hasSparseKernel(linear.getWeight().getType(), storage)
             ? source
             : WeightOp();
}

/// `type` with its n:m sparsity stored compressed, or its bitmap sparsity
/// with `stored` codes.
WeightType compressedTypeOf(WeightType type, uint64_t stored = 0) {
  SparsityAttr s = type.getSparsity();
  auto compressed = SparsityAttr::get(type.getContext(), s.getKind(), s.getN(),
                                      s.getM(), 0, 0, stored, /*dense=*/false);
  return WeightType::get(type.getContext(), type.getShape(), Type(),
                         type.getQuant(), compressed);
}

/// Code `i` (0..31) of a ggml Q4_0 (`bits` 4) or Q8_0 (8) block at `block`.
unsigned ggmlCode(unsigned bits, const uint8_t *block, unsigned i) {
  if (bits == 8)
    return block[2 + i];
  // ggml's Q4_0: byte i holds value i (low nibble) and i + 16 (high).
  return i < 16 ? block[2 + i] & 15 : block[2 + i - 16] >> 4;
}

/// Walks ggml Q4_0 or Q8_0 rows (`rows` a multiple of 16) in the bitmap
/// arrangement of WeightLayout.h (bitmapWeightBytes): for each group of 16
/// rows `group(g)`, then for each block `block(g, blk)`, then for each plane
/// and quarter `quarter(src, t, q, keep)` with the quarter's 16 keep bits
/// (bit 4r+v: row 4q+r keeps value 4t+v of the block) and the 16 rows'
/// source blocks. A quarter keeps the non-zero codes, and for Q4_0 one
/// more (the first zero) when their count is odd.
void walkBitmapRows(
    unsigned bits, uint64_t rows, uint64_t k, const uint8_t *in,
    function_ref<void(uint64_t)> group,
    function_ref<void(uint64_t, uint64_t, const uint8_t *const *)> block,
    function_ref<void(const uint8_t *const *, unsigned, unsigned, unsigned)>
        quarter) {
  const uint64_t blocks = k / 32, sourceBlockBytes = 2 + 32 * bits / 8;
  const unsigned zeroCode = bits == 4 ? 8 : 0;
  for (uint64_t g = 0; g < rows / 16; ++g) {
    group(g);
    for (uint64_t blk = 0; blk < blocks; ++blk) {
      const uint8_t *src[16];
      for (unsigned r = 0; r < 16; ++r)
        src[r] = in + ((16 * g + r) * blocks + blk) * sourceBlockBytes;
      block(g, blk, src);
      for (unsigned t = 0; t < 8; ++t)
        for (unsigned q = 0; q < 4; ++q) {
          unsigned keep = 0;
          for (unsigned bit = 0; bit < 16; ++bit)
            if (ggmlCode(bits, src[4 * q + bit / 4], 4 * t + bit % 4) !=
                zeroCode)
              keep |= 1u << bit;
          for (unsigned bit = 0; bits == 4 && llvm::popcount(keep) % 2; ++bit)
            keep |= 1u << bit;
          quarter(src, t, q, keep);
        }
    }
  }
}

/// The codes the bitmap arrangement of these rows stores.
uint64_t countBitmapCodes(unsigned bits, uint64_t rows, uint64_t k,
                          const uint8_t *in) {
  uint64_t stored = 0;
  walkBitmapRows(
      bits, rows, k, in, [](uint64_t) {},
      [](uint64_t, uint64_t, const uint8_t *const *) {},
      [&](const uint8_t *const *, unsigned, unsigned, unsigned keep) {
        stored += llvm::popcount(keep);
      });
  return stored;
}

/// Writes ggml Q4_0 or Q8_0 rows into `out` bitmap compressed
/// (WeightLayout.h, bitmapWeightBytes).
void compressBitmapRows(unsigned bits, uint64_t rows, uint64_t k,
                        const uint8_t *in, uint8_t *out) {
  uint8_t *at = out + rows / 16 * 8;
  uint8_t *masks = nullptr;
  walkBitmapRows(
      bits, rows, k, in,
      [&](uint64_t g) {
        uint64_t offset = at - out;
        std::memcpy(out + 8 * g, &offset, 8);
      },
      [&](uint64_t, uint64_t, const uint8_t *const *src) {
        for (unsigned r = 0; r < 16; ++r)
          std::memcpy(at + 2 * r, src[r], 2);
        masks = at + 32;
        std::memset(masks, 0, 64);
        at += 96;
      },
      [&](const uint8_t *const *src, unsigned t, unsigned q, unsigned keep) {
        masks[8 * t + 2 * q] = uint8_t(keep);
        masks[8 * t + 2 * q + 1] = uint8_t(keep >> 8);
        unsigned n = 0;
        for (unsigned bit = 0; bit < 16; ++bit) {
          if (!(keep >> bit & 1))
            continue;
          unsigned code = ggmlCode(bits, src[4 * q + bit / 4], 4 * t + bit % 4);
          if (bits == 8)
            *at++ = uint8_t(code);
          else if (n++ % 2 == 0)
            *at = uint8_t(code);
          else
            *at++ |= uint8_t(code << 4);
        }
      });
}

/// Writes ggml Q4_0 or Q8_0 rows (`bits` 4 or 8, `rows` a multiple of 16)
/// pruned 2:4 into `out` compressed, in the arrangement of WeightLayout.h
/// (nmBlockBytes). Returns the first (row, column) of a run of 4 with more
/// than 2 non-zeros, if any.
std::optional<std::pair<uint64_t, uint64_t>>
compress2of4Rows(unsigned bits, uint64_t rows, uint64_t k, const uint8_t *in,
                 uint8_t *out) {
  const uint64_t blocks = k / 32, sourceBlockBytes = 2 + 32 * bits / 8;
  const uint64_t codePlanes = bits == 8 ? 4 : 2;
  const uint64_t positionsAt = 32 + 64 * codePlanes;
  const uint64_t blockBytes = positionsAt + 64;
  const unsigned zeroCode = bits == 4 ? 8 : 0;
  for (uint64_t row = 0; row < rows; ++row) {
    uint64_t r = row % 16;
    for (uint64_t blk = 0; blk < blocks; ++blk) {
      const uint8_t *src = in + (row * blocks + blk) * sourceBlockBytes;
      uint8_t *dst = out + (row / 16 * blocks + blk) * blockBytes;
      std::memcpy(dst + 2 * r, src, 2);
      auto code = [&](unsigned i) { return ggmlCode(bits, src, i); };
      for (unsigned run = 0; run < 8; ++run) {
        SmallVector<unsigned, 4> kept;
        for (unsigned p = 0; p < 4; ++p)
          if (code(4 * run + p) != zeroCode)
            kept.push_back(p);
        if (kept.size() > 2)
          return std::make_pair(row, blk * 32 + 4 * run);
        // Fewer non-zeros: zero codes at the first unused places.
        for (unsigned p = 0; p < 4 && kept.size() < 2; ++p)
          if (!llvm::is_contained(kept, p))
            kept.push_back(p);
        llvm::sort(kept);
        // Target t = run / 2 holds runs 2t and 2t+1 (bytes 0, 1 and 2, 3
        // of row r's four).
        unsigned t = run / 2;
        for (unsigned s = 0; s < 2; ++s) {
          uint64_t at = 4 * r + 2 * (run % 2) + s;
          unsigned c = code(4 * run + kept[s]);
          if (bits == 8)
            dst[32 + 64 * t + at] = uint8_t(c ^ 0x80);
          else
            dst[32 + 64 * (t % 2) + at] |= uint8_t(c << (4 * (t / 2)));
          dst[positionsAt + at] |= uint8_t(kept[s] << (2 * t));
        }
      }
    }
  }
  return std::nullopt;
}

/// A blob-backed copy of `source` as type `to`, created after it, once per
/// source and type: `fill` writes its bytes from the source's (or fails,
/// emitted), `name` names the blob.
FailureOr<WeightOp>
repack(WeightOp source, WeightType to, StringRef name,
       PackedSources &packedSources,
       function_ref<LogicalResult(ArrayRef<uint8_t>, MutableArrayRef<uint8_t>)>
           fill) {
  WeightType type = source.getType();
  OpBuilder b(source);
  b.setInsertionPointAfter(source);
  Attribute &made = packedSources[{source.getSource(), to}];
  if (made)
    return WeightOp::create(b, source.getLoc(), to, made);
  FailureOr<ArrayRef<char>> bytes = readWeightBytes(source);
  if (failed(bytes))
    return failure();
  FailureOr<uint64_t> sourceBytes = type.getStorageBytes();
  FailureOr<uint64_t> packedBytes = to.getStorageBytes();
  if (failed(sourceBytes) || failed(packedBytes) ||
      *sourceBytes != bytes->size())
    return source.emitOpError("holds ")
           << bytes->size() << " bytes, not the " << type << " to repack";
  AsmResourceBlob packed = allocateWeightBytes(*packedBytes);
  MutableArrayRef<char> dest = packed.getMutableData();
  if (failed(fill(ArrayRef<uint8_t>(
                      reinterpret_cast<const uint8_t *>(bytes->data()),
                      bytes->size()),
                  MutableArrayRef<uint8_t>(
                      reinterpret_cast<uint8_t *>(dest.data()), dest.size()))))
    return failure();
  WeightOp op = createWeight(b, source.getLoc(), to, std::move(packed), name);
  made = op.getSource();
  return op;
}

/// A compressed copy of the pruned `source`.
FailureOr<WeightOp> compress(WeightOp source, PackedSources &packedSources) {
  WeightType type = source.getType();
  SparsityAttr s = type.getSparsity();
  unsigned bits = type.getQuant().getBits();
  if (s.getKind() == SparsityKind::Bitmap) {
    FailureOr<ArrayRef<char>> bytes = readWeightBytes(source);
    FailureOr<uint64_t> sourceBytes = type.getStorageBytes();
    if (failed(bytes))
      return failure();
    if (failed(sourceBytes) || *sourceBytes != bytes->size())
      return source.emitOpError("holds ")
             << bytes->size() << " bytes, not the " << type << " to compress";
    const auto *in = reinterpret_cast<const uint8_t *>(bytes->data());
    uint64_t rows = type.getNumRows(), k = type.getInnerDim();
    uint64_t stored = countBitmapCodes(bits, rows, k, in);
    return repack(source, compressedTypeOf(type, stored),
                  Twine(bits == 4 ? "q4_0" : "q8_0").concat("_bitmap").str(),
                  packedSources,
                  [&](ArrayRef<uint8_t> in, MutableArrayRef<uint8_t> out) {
                    compressBitmapRows(bits, rows, k, in.data(), out.data());
                    return success();
                  });
  }
  std::string name = (Twine(bits == 4 ? "q4_0" : "q8_0") + "_" +
                      Twine(s.getN()) + "of" + Twine(s.getM()))
                         .str();
  return repack(
      source, compressedTypeOf(type), name, packedSources,
      [&](ArrayRef<uint8_t> in, MutableArrayRef<uint8_t> out) -> LogicalResult {
        std::optional<std::pair<uint64_t, uint64_t>> dense = compress2of4Rows(
            bits, type.getNumRows(), type.getInnerDim(), in.data(),
            out.data());
        if (!dense)
          return success();
        return source.emitOpError("is marked ")
               << s.getN() << ":" << s.getM() << " sparse but row "
               << dense->first << " has more than " << s.getN()
               << " non-zero values in columns " << dense->second << ".."
               << dense->second + s.getM() - 1;
      });
}

/// `type` with `layout` as its target layout.
WeightType withTargetLayout(WeightType type,
                            WeightLayoutAttrInterface layout) {
  QuantSchemeAttr q = type.getQuant();
  auto scheme = QuantSchemeAttr::get(
      q.getContext(), q.getBits(), q.getGroup(), q.getScaleType(),
      q.getZeroType(), q.getSuperGroup(), q.getSubScaleBits(), q.getLayout(),
      q.getCodebook(), layout);
  return WeightType::get(type.getContext(), type.getShape(), Type(), scheme,
                         type.getSparsity());
}

/// The packed blob's name: the ggml format (if the scheme is one) or the
/// packed layout's width and group, and the layout, e.g. "q4_0_<layout>",
/// "p3g64_<layout>".
std::string blobNameOf(WeightType packed) {
  QuantSchemeAttr q = packed.getQuant();
  const ::kiln::GGMLFormat *ggml =
      q.getLayout() == QuantLayout::GGUF ? findGGMLBlockFormat(q) : nullptr;
  std::string format =
      ggml ? StringRef(ggml->name).lower()
      : q.getLayout() == QuantLayout::Packed
          ? "p" + std::to_string(q.getBits()) + "g" +
                std::to_string(q.getGroup())
          : "weight";
  return format + "_" + q.getTargetLayout().getLayoutName().str();
}

/// A copy of `what.source` in `what.layout`.
FailureOr<WeightOp> pack(const Packable &what, const WeightPacker &packer,
                         PackedSources &packedSources) {
  WeightOp source = what.source;
  WeightType type = source.getType(), to = withTargetLayout(type, what.layout);
  return repack(source, to, blobNameOf(to), packedSources,
                [&](ArrayRef<uint8_t> in, MutableArrayRef<uint8_t> out) {
                  packer.pack(type, to, in, out);
                  return success();
                });
}

struct PackWeights : mlir::kiln::impl::KilnPackWeightsBase<PackWeights> {
  using Base::Base;

  void getDependentDialects(DialectRegistry &registry) const override {
    Base::getDependentDialects(registry);
    if (const WeightPacker *packer = lookupWeightPacker(target))
      packer->getDependentDialects(registry);
  }

  void runOnOperation() override {
    const WeightPacker *packer = lookupWeightPacker(target);
    if (!packer) {
      getOperation().emitError("kiln-pack-weights: target ")
          << stringify(LoweringTarget(target))
          << " has no weight packer in this tool";
      return signalPassFailure();
    }
    PackedSources packedSources;
    // One packed weight per weight value, shared by every linear layer over
    // it.
    llvm::DenseMap<Value, Value> packed;
    WalkResult walk = getOperation().walk([&](LinearOp linear) {
      Value weight = linear.getWeight();
      // The compressed n:m form is the sparse CPU kernels'.
      WeightOp sparse = target == LoweringTarget::CPU
                            ? compressibleWeight(linear, unstructured)
                            : nullptr;
      std::optional<Packable> what =
          sparse ? std::nullopt : packableWeight(linear, *packer);
      if (!sparse && !what)
        return WalkResult::advance();
      Value &copy = packed[weight];
      if (!copy) {
        FailureOr<WeightOp> op = sparse
                                     ? compress(sparse, packedSources)
                                     : pack(*what, *packer, packedSources);
        if (failed(op))
          return WalkResult::interrupt();
        copy = op->getResult();
      }
      linear.getWeightMutable().assign(copy);
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      return signalPassFailure();
    // An embedding tied to a packed output layer reads the packed copy, so
    // the weights are stored once.
    // Embeddings read no compressed weights: a pruned one keeps its source.
    getOperation().walk([&](EmbeddingOp embedding) {
      Value copy = packed.lookup(embedding.getTable());
      if (copy && !cast<WeightType>(copy.getType()).getCompressedSparsity())
        embedding.getTableMutable().assign(copy);
    });
    for (auto [weight, copy] : packed)
      if (weight.use_empty())
        weight.getDefiningOp()->erase();
  }
};

} // namespace

bool mlir::kiln::kilnPackWeightsRepacks(ModuleOp module,
                                        LoweringTarget target,
                                        UnstructuredStorage unstructured) {
  const WeightPacker *packer = lookupWeightPacker(target);
  if (!packer)
    return false;
  // chooseLayout makes the target's attributes; outside a pass nothing
  // loaded their dialects.
  DialectRegistry registry;
  packer->getDependentDialects(registry);
  MLIRContext *ctx = module.getContext();
  ctx->appendDialectRegistry(registry);
  for (StringRef name : registry.getDialectNames())
    ctx->getOrLoadDialect(name);
  return module
      .walk([&](LinearOp linear) {
        return packableWeight(linear, *packer) ||
                       (target == LoweringTarget::CPU &&
                        compressibleWeight(linear, unstructured))
                   ? WalkResult::interrupt()
                   : WalkResult::advance();
      })
      .wasInterrupted();
}
