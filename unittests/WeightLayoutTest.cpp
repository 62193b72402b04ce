//===- WeightLayoutTest.cpp - storage arithmetic of compressed weights ----===//

#include "Kiln/IR/KilnDialect.h"
#include "Kiln/IR/WeightLayout.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/AsmParser/AsmParser.h"
#include "gtest/gtest.h"


namespace {

kiln::QuantBlockShape oneLevel(unsigned bits, unsigned group, unsigned zero) {
  kiln::QuantBlockShape s;
  s.bits = bits;
  s.group = group;
  s.scaleBytes = 2;
  s.zeroBytes = zero;
  return s;
}

kiln::QuantBlockShape twoLevel(unsigned bits, unsigned group, unsigned zero,
                               unsigned subBits) {
  kiln::QuantBlockShape s = oneLevel(bits, group, zero);
  s.superGroup = 256;
  s.subScaleBits = subBits;
  return s;
}

// Block sizes of ggml-common.h come out of the one general formula.
TEST(QuantBlockShape, GGUFBlockSizes) {
  EXPECT_EQ(oneLevel(4, 32, 0).blockBytes(), 18u);      // Q4_0
  EXPECT_EQ(oneLevel(4, 32, 2).blockBytes(), 20u);      // Q4_1
  EXPECT_EQ(oneLevel(5, 32, 0).blockBytes(), 22u);      // Q5_0
  EXPECT_EQ(oneLevel(5, 32, 2).blockBytes(), 24u);      // Q5_1
  EXPECT_EQ(oneLevel(8, 32, 0).blockBytes(), 34u);      // Q8_0
  EXPECT_EQ(twoLevel(2, 16, 2, 4).blockBytes(), 84u);   // Q2_K
  EXPECT_EQ(twoLevel(3, 16, 0, 6).blockBytes(), 110u);  // Q3_K
  EXPECT_EQ(twoLevel(4, 32, 2, 6).blockBytes(), 144u);  // Q4_K
  EXPECT_EQ(twoLevel(5, 32, 2, 6).blockBytes(), 176u);  // Q5_K
  EXPECT_EQ(twoLevel(6, 16, 0, 8).blockBytes(), 210u);  // Q6_K
}

TEST(QuantBlockShape, OddWidths) {
  EXPECT_EQ(oneLevel(3, 32, 0).blockBytes(), 2u + 12u);
  EXPECT_EQ(oneLevel(6, 64, 2).blockBytes(), 4u + 48u);
  EXPECT_EQ(oneLevel(7, 8, 0).blockBytes(), 2u + 7u);
}

TEST(QuantBlockShape, RowBytesNeedWholeBlocks) {
  EXPECT_EQ(oneLevel(4, 32, 0).rowBytes(4096), std::optional<uint64_t>(128 * 18));
  EXPECT_EQ(oneLevel(4, 32, 0).rowBytes(48), std::nullopt);
  EXPECT_EQ(oneLevel(4, 32, 0).rowBytes(0), std::nullopt);
  EXPECT_EQ(twoLevel(4, 32, 2, 6).rowBytes(512), std::optional<uint64_t>(288));
}

TEST(QuantBlockShape, RowBytesRejectOverflow) {
  kiln::QuantBlockShape s = oneLevel(8, 1, 0); // 3 bytes per value
  EXPECT_EQ(s.rowBytes(UINT64_MAX / 2), std::nullopt);
}

TEST(CheckedArithmetic, ElementCount) {
  int64_t ok[] = {30, 2048, 3, 64};
  EXPECT_EQ(kiln::checkedElementCount(ok), std::optional<uint64_t>(30ull * 2048 * 3 * 64));
  int64_t big[] = {int64_t(1) << 40, int64_t(1) << 30};
  EXPECT_EQ(kiln::checkedElementCount(big), std::nullopt);
  int64_t zero[] = {4, 0};
  EXPECT_EQ(kiln::checkedElementCount(zero), std::nullopt);
  int64_t negative[] = {4, -1};
  EXPECT_EQ(kiln::checkedElementCount(negative), std::nullopt);
  EXPECT_EQ(kiln::checkedAdd(UINT64_MAX, 1), std::nullopt);
  EXPECT_EQ(kiln::checkedMul(UINT64_MAX / 2 + 1, 2), std::nullopt);
}

class WeightTypeTest : public ::testing::Test {
protected:
  WeightTypeTest() { context.loadDialect<mlir::kiln::KilnDialect>(); }

  mlir::kiln::WeightType parse(llvm::StringRef text) {
    return llvm::dyn_cast_or_null<mlir::kiln::WeightType>(mlir::parseType(text, &context));
  }

  mlir::MLIRContext context;
};

TEST_F(WeightTypeTest, DenseStorage) {
  auto w = parse("!kiln.weight<1536x576xf16>");
  ASSERT_TRUE(w);
  EXPECT_EQ(*w.getStorageBytes(), 1536u * 576u * 2u);
  EXPECT_EQ(*w.getRowBytes(), 576u * 2u);
  EXPECT_EQ(w.getNumRows(), 1536);
}

TEST_F(WeightTypeTest, QuantizedStorage) {
  auto w = parse("!kiln.weight<1536x576x#kiln.quant<bits = 4, group = 32, "
                 "scale = f16, zero = f16, layout = gguf>>");
  ASSERT_TRUE(w);
  EXPECT_EQ(*w.getRowBytes(), 18u * 20u);
  EXPECT_EQ(*w.getStorageBytes(), 1536u * 18u * 20u);
}

TEST_F(WeightTypeTest, SparseStorage) {
  auto nm = parse("!kiln.weight<8x64xf16, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4>>");
  ASSERT_TRUE(nm);
  // 256 kept halves and 256 2-bit indices.
  EXPECT_EQ(*nm.getStorageBytes(), 256u * 2u + 64u);
  EXPECT_TRUE(mlir::failed(nm.getRowBytes()));
  auto csr = parse("!kiln.weight<8x64xf32, sparsity = #kiln.sparsity<kind = csr, nnz = 10>>");
  ASSERT_TRUE(csr);
  EXPECT_EQ(*csr.getStorageBytes(), 9u * 4u + 10u * 4u + 10u * 4u);
  auto bitmap = parse("!kiln.weight<8x64xf32, sparsity = #kiln.sparsity<kind = bitmap, nnz = 10>>");
  ASSERT_TRUE(bitmap);
  EXPECT_EQ(*bitmap.getStorageBytes(), 8u * 8u + 40u);
  auto block = parse("!kiln.weight<8x64xf32, sparsity = #kiln.sparsity<kind = block, "
                     "block_rows = 4, block_cols = 16, nnz = 3>>");
  ASSERT_TRUE(block);
  EXPECT_EQ(*block.getStorageBytes(), 1u + 3u * 64u * 4u);
}

// Bitmap-compressed Q4_0/Q8_0 (bitmapWeightBytes): group offsets, 96 bytes of
// scales and masks per 16 rows and block, the stored codes, 16 of padding.
TEST(QuantBlockShape, BitmapBytes) {
  // 32 rows x 64: 2 groups x 2 blocks; half of the 2048 values kept.
  EXPECT_EQ(kiln::bitmapWeightBytes(oneLevel(4, 32, 0), 32, 64, 1024),
            2u * 8u + 4u * 96u + 512u + 16u);
  EXPECT_EQ(kiln::bitmapWeightBytes(oneLevel(8, 32, 0), 32, 64, 1024),
            2u * 8u + 4u * 96u + 1024u + 16u);
  // Per row and block at half kept: 2 + 4 + 8 = 14 (Q4_0), 2 + 4 + 16 = 22
  // (Q8_0), the offsets and padding aside.
  EXPECT_EQ(*kiln::bitmapWeightBytes(oneLevel(4, 32, 0), 4096, 4096,
                                     4096u * 4096u / 2) -
                8u * 256u - 16u,
            4096u * 128u * 14u);
  EXPECT_FALSE(kiln::bitmapWeightBytes(oneLevel(4, 32, 0), 8, 64, 0));
  EXPECT_FALSE(kiln::bitmapWeightBytes(oneLevel(4, 32, 0), 16, 64, 11));
  EXPECT_FALSE(kiln::bitmapWeightBytes(oneLevel(5, 32, 0), 16, 64, 16));
  EXPECT_FALSE(kiln::bitmapWeightBytes(oneLevel(4, 32, 2), 16, 64, 16));
  EXPECT_FALSE(kiln::bitmapWeightBytes(oneLevel(4, 64, 0), 16, 64, 16));
}

TEST_F(WeightTypeTest, BitmapCompressedStorage) {
  auto q4 = parse("!kiln.weight<32x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>, "
                  "sparsity = #kiln.sparsity<kind = bitmap, nnz = 1024>>");
  ASSERT_TRUE(q4);
  EXPECT_EQ(*q4.getStorageBytes(), 2u * 8u + 4u * 96u + 512u + 16u);
  EXPECT_TRUE(mlir::failed(q4.getRowBytes()));
  EXPECT_TRUE(q4.takesQuantizedActivations());
}

TEST_F(WeightTypeTest, RejectsOverflowingShape) {
  // Verification fails, so parsing yields no type (the diagnostic goes to
  // the context's handler).
  context.getDiagEngine().registerHandler([](mlir::Diagnostic &) { return mlir::success(); });
  EXPECT_FALSE(parse("!kiln.weight<4611686018427387904x8xf32>"));
  EXPECT_FALSE(parse("!kiln.weight<3074457345618258602x2xf32>"));
}

} // namespace
