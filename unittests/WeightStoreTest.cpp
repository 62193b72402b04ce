//===- WeightStoreTest.cpp - reading, creating and gathering weights ------===//

#include "Kiln/IR/WeightStore.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

using namespace mlir;
using namespace mlir::kiln;

namespace {

class WeightStoreTest : public ::testing::Test {
protected:
  WeightStoreTest() : builder(&ctx) {
    ctx.loadDialect<KilnDialect>();
    module = ModuleOp::create(builder.getUnknownLoc());
    builder.setInsertionPointToEnd(module->getBody());
    handler =
        std::make_unique<ScopedDiagnosticHandler>(&ctx, [this](Diagnostic &d) {
          diagnostics.push_back(d.str());
          return success();
        });
  }

  /// A 2 x 4 f32 weight: 32 bytes.
  WeightType f32Weight() {
    return WeightType::get(&ctx, {2, 4}, builder.getF32Type(), {}, {});
  }

  WeightOp externalWeight(StringRef path, uint64_t offset, uint64_t size) {
    return WeightOp::create(
        builder, builder.getUnknownLoc(), f32Weight(),
        ExternalDataAttr::get(&ctx, builder.getStringAttr(path), offset, size));
  }

  /// A file of `bytes` (removed with the test).
  std::string writeFile(StringRef bytes) {
    SmallString<128> path;
    EXPECT_FALSE(llvm::sys::fs::createTemporaryFile("weights", "bin", path));
    std::error_code ec;
    llvm::raw_fd_ostream os(path, ec);
    os << bytes;
    files.push_back(std::make_unique<llvm::FileRemover>(path));
    return path.str().str();
  }

  MLIRContext ctx;
  OpBuilder builder;
  OwningOpRef<ModuleOp> module;
  std::unique_ptr<ScopedDiagnosticHandler> handler;
  std::vector<std::string> diagnostics;
  std::vector<std::unique_ptr<llvm::FileRemover>> files;
};

std::string text(ArrayRef<char> bytes) {
  return std::string(bytes.begin(), bytes.end());
}

TEST_F(WeightStoreTest, ReadsAFileRangeMappedOnce) {
  std::string path = writeFile(std::string(8, 'x') + std::string(32, 'w'));
  WeightOp a = externalWeight(path, 8, 32), b = externalWeight(path, 8, 32);
  FailureOr<ArrayRef<char>> first = readWeightBytes(a);
  FailureOr<ArrayRef<char>> second = readWeightBytes(b);
  ASSERT_TRUE(succeeded(first) && succeeded(second));
  EXPECT_EQ(text(*first), std::string(32, 'w'));
  EXPECT_EQ(first->data(), second->data()); // one mapping of the file
}

TEST_F(WeightStoreTest, ProvidedBytesReplaceTheFile) {
  std::string bytes(32, 'p');
  WeightStore::get(&ctx).provideFile("in-memory.bin", bytes);
  FailureOr<ArrayRef<char>> read =
      readWeightBytes(externalWeight("in-memory.bin", 0, 32));
  ASSERT_TRUE(succeeded(read));
  EXPECT_EQ(read->data(), bytes.data());
}

TEST_F(WeightStoreTest, MissingAndShortFilesAreOneLineErrors) {
  EXPECT_TRUE(failed(
      readWeightBytes(externalWeight("/nonexistent/kiln-weights.bin", 0, 32))));
  ASSERT_EQ(diagnostics.size(), 1u);
  EXPECT_NE(diagnostics[0].find("/nonexistent/kiln-weights.bin: No such file"),
            std::string::npos)
      << diagnostics[0];
  std::string path = writeFile(std::string(16, 'w'));
  EXPECT_TRUE(failed(readWeightBytes(externalWeight(path, 0, 32))));
  ASSERT_EQ(diagnostics.size(), 2u);
  EXPECT_NE(diagnostics[1].find("holds 16 bytes, too few for the weight at "
                                "offset 0 of 32 bytes"),
            std::string::npos)
      << diagnostics[1];
  EXPECT_EQ(diagnostics[1].find('\n'), std::string::npos);
}

TEST_F(WeightStoreTest, CreatedWeightsRoundTripThroughText) {
  AsmResourceBlob bytes = allocateWeightBytes(32);
  for (int i = 0; i < 32; ++i)
    bytes.getMutableData()[i] = char(i * 7);
  std::string expected = text(bytes.getData());
  WeightOp w = createWeight(builder, builder.getUnknownLoc(), f32Weight(),
                            std::move(bytes), "packed");
  ASSERT_TRUE(succeeded(w.verify()));
  std::string printed;
  llvm::raw_string_ostream os(printed);
  module->print(os);
  EXPECT_NE(printed.find("dense_resource<packed>"), std::string::npos);
  EXPECT_NE(printed.find("dialect_resources"), std::string::npos);

  MLIRContext other;
  other.loadDialect<KilnDialect>();
  OwningOpRef<ModuleOp> parsed = parseSourceString<ModuleOp>(printed, &other);
  ASSERT_TRUE(parsed);
  WeightOp reparsed = *parsed->getOps<WeightOp>().begin();
  FailureOr<ArrayRef<char>> read = readWeightBytes(reparsed);
  ASSERT_TRUE(succeeded(read));
  EXPECT_EQ(text(*read), expected);
}

TEST_F(WeightStoreTest, TheVerifierChecksTheBlobSize) {
  WeightOp w = createWeight(builder, builder.getUnknownLoc(), f32Weight(),
                            allocateWeightBytes(16), "short");
  EXPECT_TRUE(failed(w.verify()));
  ASSERT_FALSE(diagnostics.empty());
  EXPECT_NE(diagnostics.back().find("needs 32"), std::string::npos)
      << diagnostics.back();
}

TEST_F(WeightStoreTest, GatherStoresEachWeightOnceBlobsFirst) {
  std::string path = writeFile(std::string(32, 'a') + std::string(32, 'b'));
  WeightOp fileB = externalWeight(path, 32, 32);
  WeightOp fileA = externalWeight(path, 0, 32);
  WeightOp fileB2 = externalWeight(path, 32, 32);
  AsmResourceBlob bytes = allocateWeightBytes(32);
  std::memset(bytes.getMutableData().data(), 'c', 32);
  WeightOp blob = createWeight(builder, builder.getUnknownLoc(), f32Weight(),
                               std::move(bytes), "rewritten");
  FailureOr<std::string> section = gatherWeights(*module, "weights");
  ASSERT_TRUE(succeeded(section));
  // 'c' (the blob) at 0, then 'b' at 64 and 'a' at 128, in module order.
  EXPECT_EQ(section->size(), 160u);
  auto offsetOf = [](WeightOp w) {
    auto ext = cast<ExternalDataAttr>(w.getSource());
    EXPECT_EQ(ext.getPath().getValue(), "weights");
    return ext.getOffset();
  };
  EXPECT_EQ(offsetOf(blob), 0u);
  EXPECT_EQ(offsetOf(fileB), 64u);
  EXPECT_EQ(offsetOf(fileB2), 64u);
  EXPECT_EQ(offsetOf(fileA), 128u);
  EXPECT_EQ(section->substr(0, 32), std::string(32, 'c'));
  EXPECT_EQ(section->substr(32, 32), std::string(32, '\0'));
  EXPECT_EQ(section->substr(64, 32), std::string(32, 'b'));
  EXPECT_EQ(section->substr(128, 32), std::string(32, 'a'));
}

} // namespace
