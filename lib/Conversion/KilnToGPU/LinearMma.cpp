//===- LinearMma.cpp - kiln.linear on tensor cores for prefill ------------===//
//
// A W4A16 (and W8A16) GEMM, y[M, N] = x[M, K] w[N, K]^T, for prefill steps
// of M >= 16 tokens over Q4_0 and Q8_0 weights in #kiln_gpu.split
// (SplitLayout.h), on mma.sync.m16n8k16 with f16 operands and f32
// accumulators (sm_80, and sm_90a, which runs mma.sync too).
//
// Each lane loads its own fragments straight into registers; no operand goes
// through shared memory. What makes that cheap is the order of k inside one
// mma: the product sums over k, so any order A and B share is right. Lane
// (g = lane / 4, t = lane % 4) holds the B values k = 2t, 2t+1 (b0) and 2t+8,
// 2t+9 (b1) of weight row g of an n8 tile (PTX ISA, "Matrix Fragments for
// mma.m16n8k16"). Here those are the values of code bytes 4t..4t+3 of the
// row's Q4_0 block c: b0 the low nibbles of bytes 0 and 2, b1 of bytes 1 and
// 3 for the block's first k16 step (values 4t + {0, 2}, 4t + {1, 3}), the
// high nibbles for its second (the same + 16). A lane's B fragments for a
// whole block are one 32-bit word of codes (Q8_0: word t of each of the two
// 16-byte planes, one a step, bytes (0, 2) and (1, 3)), and its A fragments
// for a token one 128-bit load of x[token, 32c + 4t ..] and one of
// x[token, 32c + 16 + 4t ..], packed to f16 pairs (0, 2) and (1, 3) in the
// same order.
//
// Codes become f16 exactly: (q | 0x6400) is the f16 1024 + q, and one f16x2
// subtraction of 1032 gives q - 8 for two nibbles at once; a Q8_0 byte with
// its sign bit flipped (q + 128) goes under 0x64 with one prmt, minus 1152.
// A block's two mma steps sum into zero, and that f32 sum times the block's
// scale goes into the accumulator: weights stay exact, so besides f32
// accumulation the only rounding is x to f16 (the A16; |x| must stay below
// 65504).
//
// Two tilings, chosen per step by the token count (4 warps a thread block;
// weights of N, K >= 4096, one wider, take _m16 at every count):
//   _m64: a thread block computes 64 tokens x 128 rows, each warp 64 x 32
//         (4 x 4 mma tiles, 64 f32 accumulators a lane) over all of K, one
//         block of K at a time;
//   _m16: a thread block computes 16 tokens x 64 rows (32 where 64 do not
//         divide N), its warps each a quarter of the blocks of K (split-K,
//         eight blocks' loads in flight at once), summed through shared
//         memory: at 16 tokens the weights are read once.
//
//===----------------------------------------------------------------------===//

#include "GPUStepLowering.h"

#include "Conversion/KilnToGPU/IR/KilnGPUDialect.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace mlir::kiln;

namespace {

constexpr int64_t kWarps = 4;
/// mma.sync.m16n8k16: 16 tokens x 8 weight rows x 16 values of K.
constexpr int64_t kTileM = 16, kTileN = 8;
/// Values of a block, and the bytes of one plane of its codes.
constexpr int64_t kBlockValues = 32, kPlaneBytes = 16;

/// A thread block's tiling: each warp computes mTiles x nTiles mma tiles
/// over the blocks of K it takes (every warpsK-th); the other kWarps /
/// warpsK warps take the next rows of w.
struct MmaTiling {
  int64_t mTiles, nTiles, warpsK;
  /// Blocks of K a warp loads before it multiplies, at most.
  int64_t maxUnroll;
  int64_t warpsN() const { return kWarps / warpsK; }
  int64_t blockTokens() const { return kTileM * mTiles; }
  int64_t blockRows() const { return kTileN * nTiles * warpsN(); }
};
/// _m64 holds 64 accumulators and 64 values of x a lane, one block at a
/// time; _m16 a quarter of that, so eight blocks of loads are in flight.
constexpr MmaTiling kLargeTiling{4, 4, 1, 1};
/// Weights with N and K at least this, one wider, skip kLargeTiling
/// (launchLinearMma).
constexpr int64_t kLargeTilingMaxWidth = 4096;
/// _m16 takes 64 rows a thread block where they divide N (on the H100,
/// 31.2 against 41.1 us for 4 n tiles and 4 blocks in flight at
/// 4096 x 4096, 16 tokens), else 32.
MmaTiling smallTiling(int64_t n) {
  return n % 64 == 0 ? MmaTiling{1, 8, 4, 8} : MmaTiling{1, 4, 4, 8};
}

/// The GEMM's arguments: the GEMV's, then the token count.
SmallVector<KernelArg> mmaArgs(bool bias, bool residual) {
  SmallVector<KernelArg> args = linearKernelArgs(bias, residual);
  args.push_back({"tokens", KernelArgKind::Index});
  return args;
}

/// Two f32 values as an f16 pair (cvt.rn).
Value packF16(GPUKernelBuilder &kb, Value lo, Value hi) {
  ImplicitLocOpBuilder &b = kb.b;
  Value pair = vector::FromElementsOp::create(
      b, VectorType::get({2}, b.getF32Type()), ValueRange{lo, hi});
  return arith::TruncFOp::create(b, VectorType::get({2}, b.getF16Type()), pair);
}

/// The Q4_0 nibbles at bits `shift` and `shift` + 16 of `codes` minus 8,
/// as an f16 pair: (nibble | 0x6400) is 1024 + nibble; `offset` is 1032.
Value nibblesToF16(GPUKernelBuilder &kb, Value codes, int64_t shift,
                   Value offset) {
  ImplicitLocOpBuilder &b = kb.b;
  Value v = shift ? arith::ShRUIOp::create(b, codes, kb.i32(shift)) : codes;
  v = arith::AndIOp::create(b, v, kb.i32(0x000F000F));
  v = arith::OrIOp::create(b, v, kb.i32(0x64006400));
  v = LLVM::BitcastOp::create(b, VectorType::get({2}, b.getF16Type()), v);
  return arith::SubFOp::create(b, v, offset);
}

/// Bytes `first` and `first` + 2 of `flipped` (Q8_0 codes with their sign
/// bits flipped: q + 128) as an f16 pair of q: prmt puts each byte under
/// 0x64 (the f16 1024 + byte); `offset` is 1152.
Value bytesToF16(GPUKernelBuilder &kb, Value flipped, int64_t first,
                 Value offset) {
  ImplicitLocOpBuilder &b = kb.b;
  // Result bytes from pool bytes first, 4, first + 2, 4 (pool byte 4: 0x64).
  int64_t selector = first | 4 << 4 | (first + 2) << 8 | 4 << 12;
  Value v =
      NVVM::PermuteOp::create(b, b.getI32Type(), flipped, kb.i32(0x64646464),
                              kb.i32(selector), NVVM::PermuteMode::DEFAULT);
  v = LLVM::BitcastOp::create(b, VectorType::get({2}, b.getF16Type()), v);
  return arith::SubFOp::create(b, v, offset);
}

/// The kernel of `tiling` (see the file comment).
int64_t mmaGemmKernel(GPUKernelLibrary &kernels, const SplitFormat &format,
                      int64_t n, int64_t k, bool bias, bool residual,
                      const MmaTiling &tiling) {
  std::string name = llvm::formatv(
      "kiln_gemm_mma_{0}_split_{1}x{2}{3}{4}_m{5}", format.name, n, k,
      bias ? "_bias" : "", residual ? "_residual" : "", tiling.blockTokens());
  return kernels.get(name, mmaArgs(bias, residual), [&](GPUKernelBuilder &kb) {
    ImplicitLocOpBuilder &b = kb.b;
    MLIRContext *ctx = b.getContext();
    Type f32 = b.getF32Type(), f16 = b.getF16Type();
    auto f16x2 = VectorType::get({2}, f16);
    int64_t mTiles = tiling.mTiles, nTiles = tiling.nTiles;
    int64_t blocks = k / kBlockValues;
    // Q4_0: one plane of codes, two nibbles a byte; Q8_0: two planes.
    int64_t planes = format.codeBytes / kPlaneBytes;
    // Tiles' accumulators, lane-major: [mTile][nTile][4].
    int64_t accCount = mTiles * nTiles * 4;

    Value lane = kb.lane(), warp = kb.warp();
    Value group = kb.div(lane, kb.idx(4)), quad = kb.rem(lane, kb.idx(4));
    Value warpN = tiling.warpsK > 1 ? kb.idx(0) : warp;
    Value warpK = tiling.warpsK > 1 ? warp : kb.idx(0);
    Value firstRow = kb.add(
        kb.mul(kb.blockIdx(gpu::Dimension::x), kb.idx(tiling.blockRows())),
        kb.mul(warpN, kb.idx(kTileN * nTiles)));
    Value firstToken =
        kb.mul(kb.blockIdx(gpu::Dimension::y), kb.idx(tiling.blockTokens()));
    Value tokens = kb.arg("tokens");

    Value x4 = kb.view("x", VectorType::get({4}, f32));
    Value codeWords = kb.view("w", b.getI32Type());
    Value scaleView = kb.view("w", f16);
    // Where each lane's loads start, before the block's offset: A rows g and
    // g + 8 of each m tile (tokens past the last read the last, their
    // results unstored), in 16-byte units; B's code word of row g of each n
    // tile; the scales of its accumulators' rows 2t and 2t + 1.
    SmallVector<Value> xAt;
    for (int64_t i = 0; i < mTiles; ++i)
      for (int64_t h = 0; h < 2; ++h) {
        Value token =
            kb.add(firstToken, kb.add(kb.idx(kTileM * i + 8 * h), group));
        token = kb.minu(token, kb.sub(tokens, kb.idx(1)));
        xAt.push_back(kb.add(kb.mul(token, kb.idx(k / 4)), quad));
      }
    SmallVector<Value> codeAt, scaleAt;
    Value headers = kb.idx(n * blocks * format.codeBytes / 2);
    for (int64_t j = 0; j < nTiles; ++j) {
      Value tileRow = kb.add(firstRow, kb.idx(kTileN * j));
      Value rowCodes = kb.add(
          kb.mul(kb.add(tileRow, group), kb.idx(blocks * planes * 4)), quad);
      for (int64_t p = 0; p < planes; ++p)
        codeAt.push_back(kb.add(rowCodes, kb.idx(p * blocks * 4)));
      for (int64_t e = 0; e < 2; ++e) {
        Value row = kb.add(tileRow, kb.add(kb.mul(quad, kb.idx(2)), kb.idx(e)));
        scaleAt.push_back(kb.add(headers, kb.mul(row, kb.idx(blocks))));
      }
    }

    auto body = [&] {
      Value zero = kb.f(0.0f);
      Value offset = arith::ConstantOp::create(
          b, DenseElementsAttr::get(
                 f16x2, b.getFloatAttr(f16, planes == 1 ? 1032.0 : 1152.0)));
      Type mmaResult =
          LLVM::LLVMStructType::getLiteral(ctx, {f32, f32, f32, f32});
      auto mma = [&](ArrayRef<Value> a, ArrayRef<Value> bFrag,
                     ArrayRef<Value> c) {
        return NVVM::MmaOp::create(
            b, mmaResult, a, bFrag, c, ArrayRef<int64_t>{16, 8, 16},
            std::nullopt, std::nullopt,
            std::array<NVVM::MMATypes, 2>{NVVM::MMATypes::f16,
                                          NVVM::MMATypes::f16},
            std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                           NVVM::MMALayout::col});
      };
      // One block's loads: x [mTile][row g, g + 8][first, second 16],
      // code words [nTile][plane], scales [nTile][row 2t, 2t + 1].
      struct BlockLoads {
        SmallVector<Value> x, words, scales;
      };
      auto load = [&](Value block) {
        BlockLoads l;
        Value xBlock = kb.mul(block, kb.idx(kBlockValues / 4));
        for (Value at : xAt)
          for (int64_t s = 0; s < 2; ++s)
            l.x.push_back(
                kb.load(x4, kb.add(at, kb.add(xBlock, kb.idx(4 * s)))));
        Value codeBlock = kb.mul(block, kb.idx(kPlaneBytes / 4));
        for (Value at : codeAt)
          l.words.push_back(kb.load(codeWords, kb.add(at, codeBlock)));
        for (Value at : scaleAt)
          l.scales.push_back(arith::ExtFOp::create(
              b, f32, kb.load(scaleView, kb.add(at, block))));
        return l;
      };
      auto multiply = [&](const BlockLoads &l, MutableArrayRef<Value> sums) {
        // A fragments [mTile][step]: rows g, g + 8 of values (0, 2), then
        // of values (1, 3) of the lane's four.
        auto at = [&](Value v, int64_t e) {
          return vector::ExtractOp::create(b, v, e).getResult();
        };
        SmallVector<SmallVector<Value, 4>> a;
        for (int64_t i = 0; i < mTiles; ++i)
          for (int64_t s = 0; s < 2; ++s) {
            Value top = l.x[(2 * i) * 2 + s], bottom = l.x[(2 * i + 1) * 2 + s];
            a.push_back({packF16(kb, at(top, 0), at(top, 2)),
                         packF16(kb, at(bottom, 0), at(bottom, 2)),
                         packF16(kb, at(top, 1), at(top, 3)),
                         packF16(kb, at(bottom, 1), at(bottom, 3))});
          }
        // B fragments [nTile][step]: Q4_0's low nibbles, then high; Q8_0's
        // first plane, then second.
        SmallVector<SmallVector<Value, 2>> bFrags;
        for (int64_t j = 0; j < nTiles; ++j)
          for (int64_t s = 0; s < 2; ++s) {
            if (planes == 1) {
              Value w = l.words[j];
              bFrags.push_back({nibblesToF16(kb, w, 4 * s, offset),
                                nibblesToF16(kb, w, 4 * s + 8, offset)});
              continue;
            }
            Value flipped = arith::XOrIOp::create(b, l.words[2 * j + s],
                                                  kb.i32(int32_t(0x80808080)));
            bFrags.push_back({bytesToF16(kb, flipped, 0, offset),
                              bytesToF16(kb, flipped, 1, offset)});
          }
        for (int64_t i = 0; i < mTiles; ++i)
          for (int64_t j = 0; j < nTiles; ++j) {
            Value part = mma(a[2 * i], bFrags[2 * j], {zero, zero, zero, zero});
            SmallVector<Value> c;
            for (int64_t e = 0; e < 4; ++e)
              c.push_back(LLVM::ExtractValueOp::create(b, part, e));
            part = mma(a[2 * i + 1], bFrags[2 * j + 1], c);
            for (int64_t e = 0; e < 4; ++e) {
              Value &sum = sums[(i * nTiles + j) * 4 + e];
              sum = kb.fma(LLVM::ExtractValueOp::create(b, part, e),
                           l.scales[2 * j + e % 2], sum);
            }
          }
      };
      // A warp takes blocks warpK, warpK + warpsK, ...; `unroll` of them a
      // step, all their loads before the first mma, when they divide its
      // share.
      int64_t unroll = 1;
      if (blocks % tiling.warpsK == 0)
        while (unroll * 2 <= tiling.maxUnroll &&
               blocks / tiling.warpsK % (unroll * 2) == 0)
          unroll *= 2;
      SmallVector<Value> zeros(accCount, zero);
      auto scan = kb.loop(
          warpK, kb.idx(blocks), kb.idx(tiling.warpsK * unroll), zeros,
          [&](Value block, ValueRange acc) {
            SmallVector<BlockLoads> loads;
            for (int64_t u = 0; u < unroll; ++u)
              loads.push_back(load(kb.add(block, kb.idx(u * tiling.warpsK))));
            SmallVector<Value> sums(acc.begin(), acc.end());
            for (const BlockLoads &l : loads)
              multiply(l, sums);
            return sums;
          });
      SmallVector<Value> totals(scan.getResults());
      auto store = [&] {
        for (int64_t i = 0; i < mTiles; ++i)
          for (int64_t e = 0; e < 4; ++e) {
            Value token = kb.add(
                firstToken, kb.add(kb.idx(kTileM * i + 8 * (e / 2)), group));
            kb.ifThen(kb.ult(token, tokens), [&] {
              for (int64_t j = 0; j < nTiles; ++j) {
                Value row = kb.add(firstRow, kb.add(kb.idx(kTileN * j + e % 2),
                                                    kb.mul(quad, kb.idx(2))));
                storeLinearResult(kb, totals[(i * nTiles + j) * 4 + e], row,
                                  kb.add(kb.mul(token, kb.idx(n)), row), bias,
                                  residual);
              }
            });
          }
      };
      if (tiling.warpsK == 1) {
        store();
        return;
      }
      // Split-K: warps 1.. leave their sums in shared memory, warp 0 adds
      // them (lane-major, so each store and load is one conflict-free row).
      Value partials =
          kb.sharedArray((tiling.warpsK - 1) * accCount * kWarpSize, f32);
      auto slot = [&](Value w, int64_t e) {
        return kb.add(kb.mul(kb.add(kb.mul(w, kb.idx(accCount)), kb.idx(e)),
                             kb.idx(kWarpSize)),
                      lane);
      };
      kb.ifThen(
          arith::CmpIOp::create(b, arith::CmpIPredicate::ne, warp, kb.idx(0)),
          [&] {
            Value w = kb.sub(warp, kb.idx(1));
            for (int64_t e = 0; e < accCount; ++e)
              kb.store(totals[e], partials, slot(w, e));
          });
      kb.barrier();
      kb.ifThen(
          arith::CmpIOp::create(b, arith::CmpIPredicate::eq, warp, kb.idx(0)),
          [&] {
            for (int64_t w = 0; w + 1 < tiling.warpsK; ++w)
              for (int64_t e = 0; e < accCount; ++e)
                totals[e] =
                    kb.add(totals[e], kb.load(partials, slot(kb.idx(w), e)));
            store();
          });
    };
    // Whole warps past the last row have nothing to do (no barrier follows
    // in this tiling).
    if (tiling.warpsK == 1 && n % tiling.blockRows() != 0)
      kb.ifThen(kb.ult(firstRow, kb.idx(n)), body);
    else
      body();
  });
}

} // namespace

bool mlir::kiln::hasLinearMma(const WeightRef &w) {
  const SplitFormat *format = findSplitFormat(w.type);
  return isSplit(w.type) && format && !format->hasMin &&
         w.type.getShape().size() == 2 &&
         w.type.getShape()[0] % (kTileN * kWarps) == 0;
}

void mlir::kiln::launchLinearMma(GPUStepLowering &step, const WeightRef &w,
                                 bool bias, bool residual, ArrayRef<Value> args,
                                 Value tokens, int64_t maxTokens,
                                 ImplicitLocOpBuilder &b) {
  int64_t n = w.type.getShape()[0], k = w.type.getShape()[1];
  const SplitFormat &format = *findSplitFormat(w.type);
  auto launch = [&](const MmaTiling &tiling) {
    Value rowBlocks = arith::ConstantIndexOp::create(
        b, (n + tiling.blockRows() - 1) / tiling.blockRows());
    step.launch(
        mmaGemmKernel(step.kernels, format, n, k, bias, residual, tiling),
        {rowBlocks, GPUStepLowering::ceilDiv(tokens, tiling.blockTokens(), b),
         arith::ConstantIndexOp::create(b, 1)},
        {kWarps * kWarpSize, 1, 1}, args, b);
  };
  // Steps of fewer tokens than a large tile never launch it, nor do weights
  // of N and K >= 4096, one of them wider: there _m16 measured faster at 512
  // tokens too (H100: 697 / 672 us against 984 / 899 at 14336x4096 /
  // 4096x14336; H200: 783 / 825 against 991 / 905), while at 4096x4096 the
  // H200 ran _m64 in 193 us against 237 (the H100: 228 against 204).
  bool wide = std::min(n, k) >= kLargeTilingMaxWidth &&
              std::max(n, k) > kLargeTilingMaxWidth;
  if ((maxTokens && maxTokens < kLargeTiling.blockTokens()) || wide) {
    launch(smallTiling(n));
    return;
  }
  auto large = scf::IfOp::create(
      b,
      arith::CmpIOp::create(
          b, arith::CmpIPredicate::uge, tokens,
          arith::ConstantIndexOp::create(b, kLargeTiling.blockTokens())),
      /*withElseRegion=*/true);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(large.thenBlock()->getTerminator());
  launch(kLargeTiling);
  b.setInsertionPoint(large.elseBlock()->getTerminator());
  launch(smallTiling(n));
}
