//===- GGMLFormatsTest.cpp - the table of ggml types against its sources --===//
//
// Checks Kiln/IR/GGMLFormats.h against facts written here independently: the
// sizes of ggml-common.h's block structs (summed field by field), the numbers
// of the gguf Python package and the general block formula of WeightLayout.h
// (Rows16Test.cpp checks the CPU target's forms of the table's formats).
//
//===----------------------------------------------------------------------===//

#include "Kiln/IR/GGMLFormats.h"
#include "Kiln/IR/WeightLayout.h"

#include "gtest/gtest.h"

#include <cctype>
#include <set>
#include <string>

namespace {

using kiln::GGMLType;

struct Expected {
  GGMLType type;
  unsigned values, bytes;
};

// ggml-common.h, QK_K = 256, K_SCALE_SIZE = 12, ggml_half = 2 bytes: each
// block's sizeof as the sum of its fields.
constexpr unsigned kHalf = 2, kQK = 256;
const Expected kBlockStructs[] = {
    {GGMLType::Q4_0, 32, kHalf + 32 / 2},                             // d, qs
    {GGMLType::Q4_1, 32, 2 * kHalf + 32 / 2},                         // d, m, qs
    {GGMLType::Q5_0, 32, kHalf + 4 + 32 / 2},                         // d, qh, qs
    {GGMLType::Q5_1, 32, 2 * kHalf + 4 + 32 / 2},                     // d, m, qh, qs
    {GGMLType::Q8_0, 32, kHalf + 32},                                 // d, qs
    {GGMLType::Q8_1, 32, 2 * kHalf + 32},                             // d, s, qs
    {GGMLType::Q2_K, kQK, kQK / 16 + kQK / 4 + 2 * kHalf},            // scales, qs, d, dmin
    {GGMLType::Q3_K, kQK, kQK / 8 + kQK / 4 + 12 + kHalf},            // hmask, qs, scales, d
    {GGMLType::Q4_K, kQK, 2 * kHalf + 12 + kQK / 2},                  // d, dmin, scales, qs
    {GGMLType::Q5_K, kQK, 2 * kHalf + 12 + kQK / 8 + kQK / 2},        // d, dmin, scales, qh, qs
    {GGMLType::Q6_K, kQK, kQK / 2 + kQK / 4 + kQK / 16 + kHalf},      // ql, qh, scales, d
    {GGMLType::Q8_K, kQK, 4 + kQK + 2 * (kQK / 16)},                  // float d, qs, bsums
    {GGMLType::IQ4_NL, 32, kHalf + 32 / 2},                           // d, qs
    {GGMLType::IQ4_XS, kQK, kHalf + 2 + kQK / 64 + kQK / 2},          // d, scales_h, scales_l, qs
    {GGMLType::MXFP4, 32, 1 + 32 / 2},                                // e, qs
};

TEST(GGMLFormats, BlockBytesAreThoseOfGGMLCommon) {
  for (const Expected &e : kBlockStructs) {
    const kiln::GGMLFormat &f = kiln::getGGMLFormat(e.type);
    EXPECT_EQ(f.blockValues, e.values) << f.name;
    EXPECT_EQ(f.blockBytes, e.bytes) << f.name;
  }
}

// gguf-py 0.19 (gguf/constants.py, GGML_QUANT_SIZES): (values, bytes) for
// every type it names, written out. One deliberate difference: gguf-py says
// Q8_1 is (32, 40), an old float-d layout; ggml's block_q8_1 is two halves
// and 32 int8 (36), checked above, and Q8_1 never appears in model files.
TEST(GGMLFormats, AgreeWithGGUFPy) {
  struct Sizes {
    uint32_t id;
    const char *name;
    unsigned values, bytes;
  };
  const Sizes gguf[] = {
      {0, "F32", 1, 4},         {1, "F16", 1, 2},
      {2, "Q4_0", 32, 18},      {3, "Q4_1", 32, 20},
      {6, "Q5_0", 32, 22},      {7, "Q5_1", 32, 24},
      {8, "Q8_0", 32, 34},      {10, "Q2_K", 256, 84},
      {11, "Q3_K", 256, 110},   {12, "Q4_K", 256, 144},
      {13, "Q5_K", 256, 176},   {14, "Q6_K", 256, 210},
      {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66},
      {17, "IQ2_XS", 256, 74},  {18, "IQ3_XXS", 256, 98},
      {19, "IQ1_S", 256, 50},   {20, "IQ4_NL", 32, 18},
      {21, "IQ3_S", 256, 110},  {22, "IQ2_S", 256, 82},
      {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},
      {25, "I16", 1, 2},        {26, "I32", 1, 4},
      {27, "I64", 1, 8},        {28, "F64", 1, 8},
      {29, "IQ1_M", 256, 56},   {30, "BF16", 1, 2},
      {34, "TQ1_0", 256, 54},   {35, "TQ2_0", 256, 66},
      {39, "MXFP4", 32, 17},
  };
  for (const Sizes &s : gguf) {
    const kiln::GGMLFormat *f = kiln::findGGMLFormat(s.id);
    ASSERT_TRUE(f) << s.name;
    std::string upper = f->name;
    for (char &c : upper)
      c = char(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_EQ(upper, s.name);
    EXPECT_EQ(f->blockValues, s.values) << s.name;
    EXPECT_EQ(f->blockBytes, s.bytes) << s.name;
  }
  EXPECT_EQ(kiln::getGGMLFormat(GGMLType::Q8_1).blockBytes, 36u);
}

TEST(GGMLFormats, RetiredAndUnknownNumbers) {
  for (uint32_t id : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 40u, 1000u})
    EXPECT_FALSE(kiln::findGGMLFormat(id)) << id;
  std::set<std::string> names;
  for (const kiln::GGMLFormat &f : kiln::kGGMLFormats)
    if (f.name)
      EXPECT_TRUE(names.insert(f.name).second) << f.name;
}

// Each scheme's block, by the one general formula, is the ggml block.
TEST(GGMLFormats, SchemesHaveTheirBlockBytes) {
  unsigned schemes = 0;
  for (const kiln::GGMLFormat &f : kiln::kGGMLFormats) {
    if (!f.isQuantScheme())
      continue;
    ++schemes;
    kiln::QuantBlockShape shape;
    shape.bits = f.bits;
    shape.group = f.group;
    shape.scaleBytes = kHalf;
    shape.zeroBytes = f.hasMin ? kHalf : 0;
    shape.superGroup = f.superGroup;
    shape.subScaleBits = f.subScaleBits;
    EXPECT_EQ(shape.blockValues(), f.blockValues) << f.name;
    // Ternary and grid blocks are ggml's structs, not `bits`-wide codes.
    if (f.hasGeneralBlock())
      EXPECT_EQ(shape.blockBytes(), f.blockBytes) << f.name;
    EXPECT_EQ(kiln::findGGMLBlockFormat(f.bits, f.group, f.hasMin,
                                        f.superGroup, f.subScaleBits,
                                        f.codebook),
              &f);
  }
  // Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K..Q6_K IQ2_XXS IQ2_XS IQ2_S IQ3_XXS IQ3_S
  // IQ1_S IQ1_M IQ4_NL IQ4_XS TQ1_0 TQ2_0
  EXPECT_EQ(schemes, 21u);
  // A codebook tells IQ2_S from IQ2_XS (same nominal scheme).
  EXPECT_EQ(kiln::findGGMLBlockFormat(2, 16, false, 256, 4,
                                      kiln::GGMLCodebook::IQ2S)->type,
            GGMLType::IQ2_S);
  // A codebook tells TQ2_0 from TQ1_0.
  EXPECT_EQ(kiln::findGGMLBlockFormat(2, 256, false, 0, 0,
                                      kiln::GGMLCodebook::TernaryBase3)->type,
            GGMLType::TQ1_0);
  // A codebook tells IQ4_NL from Q4_0.
  EXPECT_EQ(kiln::findGGMLBlockFormat(4, 32, false, 0, 0)->type,
            GGMLType::Q4_0);
  EXPECT_EQ(kiln::findGGMLBlockFormat(4, 32, false, 0, 0,
                                      kiln::GGMLCodebook::IQ4NL)->type,
            GGMLType::IQ4_NL);
  EXPECT_FALSE(kiln::findGGMLBlockFormat(4, 32, true, 256, 4));
  EXPECT_FALSE(kiln::findGGMLBlockFormat(4, 64, false, 0, 0));
}

} // namespace
