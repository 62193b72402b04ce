//===- Rows16Test.cpp - the CPU target's rows16 layout --------------------===//
//
// The rows16 forms of the ggml formats (Conversion/KilnToCPU/IR/Rows16.h)
// and what a weight in #kiln_cpu.rows16 takes.
//
//===----------------------------------------------------------------------===//

#include "Conversion/KilnToCPU/IR/KilnCPUDialect.h"

#include "mlir/AsmParser/AsmParser.h"
#include "mlir/IR/MLIRContext.h"
#include "gtest/gtest.h"

namespace {

using kiln::GGMLType;

// The rows16 forms take their ggml numbers from the table; these are the
// values the rows16 kernels were written against.
TEST(Rows16Format, FormsOfTheTable) {
  struct Rows16 {
    GGMLType type;
    const char *name;
    unsigned bits, superValues, sourceBytes;
    bool hasMin, halfScales;
  };
  const Rows16 expected[] = {
      {GGMLType::Q4_0, "q4_0", 4, 32, 18, false, false},
      {GGMLType::Q4_1, "q4_1", 4, 32, 20, true, false},
      {GGMLType::Q5_0, "q5_0", 5, 32, 22, false, false},
      {GGMLType::Q5_1, "q5_1", 5, 32, 24, true, false},
      {GGMLType::Q8_0, "q8_0", 8, 32, 34, false, false},
      {GGMLType::Q2_K, "q2_k", 2, 256, 84, true, true},
      {GGMLType::Q3_K, "q3_k", 3, 256, 110, false, true},
      {GGMLType::Q4_K, "q4_k", 4, 256, 144, true, false},
      {GGMLType::Q5_K, "q5_k", 5, 256, 176, true, false},
      {GGMLType::Q6_K, "q6_k", 6, 256, 210, false, true},
      {GGMLType::IQ4_NL, "iq4_nl", 4, 32, 18, false, false},
      {GGMLType::IQ4_XS, "iq4_xs", 4, 256, 136, false, false},
      {GGMLType::TQ2_0, "tq2_0", 2, 256, 66, false, false},
      {GGMLType::TQ1_0, "tq1_0", 2, 256, 54, false, false},
      // Grid formats: rewritten to 4-bit codebook indices.
      {GGMLType::IQ2_XXS, "iq2_xxs", 4, 256, 66, false, false},
      {GGMLType::IQ3_XXS, "iq3_xxs", 4, 256, 98, false, false},
      {GGMLType::IQ2_XS, "iq2_xs", 4, 256, 74, false, true},
      {GGMLType::IQ3_S, "iq3_s", 4, 256, 110, false, false},
      {GGMLType::IQ2_S, "iq2_s", 4, 256, 82, false, true},
      {GGMLType::IQ1_S, "iq1_s", 4, 256, 50, false, false},
      {GGMLType::IQ1_M, "iq1_m", 4, 256, 56, false, true},
  };
  for (const Rows16 &e : expected) {
    const mlir::kiln::Rows16Format *f = mlir::kiln::findRows16Format(e.type);
    ASSERT_TRUE(f) << e.name;
    EXPECT_STREQ(f->name, e.name);
    EXPECT_EQ(f->codeBits, e.bits) << e.name;
    EXPECT_EQ(f->superValues, e.superValues) << e.name;
    EXPECT_EQ(f->sourceBytes, e.sourceBytes) << e.name;
    EXPECT_EQ(f->hasMin, e.hasMin) << e.name;
    EXPECT_EQ(f->halfScales, e.halfScales) << e.name;
    EXPECT_EQ(f->codebook != nullptr, e.type == GGMLType::IQ4_NL ||
                                          e.type == GGMLType::IQ4_XS ||
                                          e.type == GGMLType::IQ2_XXS ||
                                          e.type == GGMLType::IQ3_XXS ||
                                          e.type == GGMLType::IQ2_XS ||
                                          e.type == GGMLType::IQ3_S ||
                                          e.type == GGMLType::IQ2_S ||
                                          e.type == GGMLType::IQ1_S ||
                                          e.type == GGMLType::IQ1_M)
        << e.name;
  }
  EXPECT_FALSE(mlir::kiln::findRows16Format(GGMLType::F16));
}

class Rows16LayoutTest : public ::testing::Test {
protected:
  Rows16LayoutTest() {
    context.loadDialect<mlir::kiln::KilnDialect, mlir::kiln::KilnCPUDialect>();
  }

  mlir::kiln::WeightType parse(llvm::StringRef text) {
    return llvm::dyn_cast_or_null<mlir::kiln::WeightType>(
        mlir::parseType(text, &context));
  }

  mlir::MLIRContext context;
};

TEST_F(Rows16LayoutTest, WeightStorage) {
  // Q4_0, 40 rows (three groups of 16, the last padded) of K = 64: per group
  // 2 headers of 32 bytes (64, already aligned) and 2 blocks of 256 bytes.
  auto w = parse("!kiln.weight<40x64x#kiln.quant<bits = 4, group = 32, "
                 "scale = f16, layout = gguf, target_layout = #kiln_cpu.rows16>>");
  ASSERT_TRUE(w);
  EXPECT_EQ(*w.getStorageBytes(), 3u * (64u + 2u * 256u));
  // Groups hold no rows of their own.
  EXPECT_TRUE(mlir::failed(w.getRowBytes()));
  const mlir::kiln::Rows16Format *q6k = mlir::kiln::findRows16Format(GGMLType::Q6_K);
  ASSERT_TRUE(q6k);
  // One 288-byte Q6_K header padded to 320, 8 blocks of 384 bytes.
  EXPECT_EQ(mlir::kiln::rows16Bytes(*q6k, 16, 256), std::optional<uint64_t>(320u + 8u * 384u));
  EXPECT_EQ(mlir::kiln::rows16Bytes(*q6k, 16, 255), std::nullopt);
  EXPECT_EQ(mlir::kiln::rows16Bytes(*q6k, uint64_t(1) << 62, 1u << 20), std::nullopt);
  // Q2_K: a 320-byte header and 8 blocks of two 64-byte planes, 84 bytes a
  // row per super-block as in GGUF.
  const mlir::kiln::Rows16Format *q2k = mlir::kiln::findRows16Format(GGMLType::Q2_K);
  ASSERT_TRUE(q2k);
  EXPECT_EQ(mlir::kiln::rows16Bytes(*q2k, 16, 256), std::optional<uint64_t>(16u * 84u));
}

} // namespace
